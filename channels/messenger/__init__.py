"""Messenger Platform adapter: pure payload builders, error classification, the Send API call."""
