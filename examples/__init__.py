"""Two small services that live on the provider's tokens: a shop and a wallet.

They show the relying side of the system end to end (issue 8); see examples/README.md.
Run from the repository root (``python -m examples.wallet``, ``python -m examples.shop``)
or all together with the provider through ``make demo``.
"""
