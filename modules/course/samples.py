"""Sample texts the lessons and tasks work on: short product reviews and one longer article."""

REVIEWS = [
    "I love this keyboard, the keys feel great and it works perfectly with my laptop.",
    "The delivery was late and the box arrived damaged. Very disappointing service.",
    "It does what it says. Nothing special, nothing wrong, average value for the price.",
    "Excellent battery life, I charge it once a week. Highly recommend it to anyone.",
    "The app crashes every time I open the settings page. Terrible update, please fix it.",
    "Setup took five minutes and the sound quality is amazing for such a small speaker.",
    "Customer support never answered my emails. I want a refund and will not buy again.",
    "Solid build, fair price, the colour is slightly darker than in the pictures.",
    "Fantastic camera, sharp photos even at night. The best phone I have owned.",
    "The charger stopped working after two weeks and the replacement is also broken.",
]

ARTICLE = (
    "Background job queues let a web application answer a request at once and do the slow part "
    "later. A user uploads a thousand documents; the API stores them, puts one message per batch "
    "on a queue and replies with a job id within milliseconds. Workers in other processes, often "
    "on other machines, take the messages, call the embedding model, store the vectors and report "
    "their progress. If a worker crashes, the message goes back to the queue and another worker "
    "finishes the batch. The user watches a progress bar fed by the job's status instead of a "
    "spinning request that times out after thirty seconds. Redis is a common broker for this "
    "because it is fast and simple to run, and Celery is the most used task queue in Python."
)
