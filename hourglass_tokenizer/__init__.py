"""Hourglass Tokenizer (HoT) for video pose transformers."""
