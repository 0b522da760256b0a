"""Tests of the Graph API emulator (channels/sandbox)."""
