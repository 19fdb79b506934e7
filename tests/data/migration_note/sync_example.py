import os
from assistd_client import OpenAI
client = OpenAI(api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["ASSISTD_BASE_URL"])
# Old Chat Completions usage
response_old = client.chat.completions.create(
    model="gpt-4o",
    messages=[{"role": "user", "content": "Hello from Chat Completions!"}]
)
print("Old API response:", response_old.choices[0].message.content)
# New Assistants API usage
assistant_id = "your-assistant-id" # Replace with your actual assistant ID
response_new = client.assistants.chat.completions.create(
    assistant=assistant_id,
    messages=[{"role": "user", "content": "Hello from Assistants API!"}]
)
print("New API response:", response_new.choices[0].message.content)
