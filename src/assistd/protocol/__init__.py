"""Wire models: request bodies and response objects exactly as OpenAI's spec names them."""
