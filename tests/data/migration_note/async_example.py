import asyncio
import os
from assistd_client import OpenAI
async def async_assistant_chat():
    client = OpenAI(api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["ASSISTD_BASE_URL"])
    assistant_id = "your-assistant-id"
    response = await client.assistants.chat.completions.acreate(
        assistant=assistant_id,
        messages=[{"role": "user", "content": "Async hello!"}]
    )
    print("Async response:", response.choices[0].message.content)
asyncio.run(async_assistant_chat())
