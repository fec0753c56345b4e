"""`make bench`: cold-import cost of each handler and AWS requests per message.

Run as `python -m bench` from the repository root; see `bench/__main__.py` for the options.
"""
