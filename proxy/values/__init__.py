"""Values that arrive as text from outside (headers, query strings, JSON fields, Ollama's answers): whole
numbers, timestamps, and strings made safe to store and to use as labels.
"""
