"""A simulated OpenAI-compatible LLM server, so every lesson runs offline and free.

Run it with `python -m course.llm.simulator`, or from Python with `launcher.start()`.
"""
