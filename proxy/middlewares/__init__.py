"""The middleware chain; its order is declared once, in app.py."""
