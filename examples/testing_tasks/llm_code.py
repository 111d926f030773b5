"""Async LLM code of the kind a task or a web handler calls: many summaries, a few at a time."""
import asyncio


async def summarise_all(client, texts, model="gpt-4o-mini", at_once=5):
    """One summary per text, at most `at_once` calls in flight, in the order of the texts."""
    gate = asyncio.Semaphore(at_once)

    async def one(text):
        async with gate:
            response = await client.chat.completions.create(
                model=model, max_tokens=40,
                messages=[{"role": "user", "content": f"Summarise in one sentence: {text}"}])
            return response.choices[0].message.content

    return await asyncio.gather(*(one(text) for text in texts))
