"""Built-in provider plugins: OpenAI, Azure OpenAI, Anthropic, Gemini."""
