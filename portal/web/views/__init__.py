"""Blueprints: parse the request, call one function, render."""
