"""Small Gradio UI modules used by app.py. Only this package and app.py import gradio."""
