"""The IG console's services (issue 8): the one decision that admits IG officers, the review
queue, the facts alerts need, and the chain's status. Pages and API routes call these."""
