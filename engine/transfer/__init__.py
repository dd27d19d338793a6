"""Red-bag transfers: care home → hospital and the discharge back (issue 7, docs/red-bag.md).

``message`` builds and reads the message, ``rules`` decides whether one may be accepted,
``signature`` signs and verifies it, ``receive`` takes one in, ``store`` holds what was taken
in, ``parties`` says who may see a transfer, ``record`` which of a person's transfers their
combined record shows, and ``news2`` scores the observations.
"""
