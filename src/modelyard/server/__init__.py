"""HTTP surface: the ASGI app and the OpenAI / Anthropic wire formats it speaks."""
