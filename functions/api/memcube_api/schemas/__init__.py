"""The wire formats the API speaks, and their mapping onto the domain's commands and entities.

- `messages`: MemOS's chat messages and content parts, flattened into the domain's source units.
- `product`: MemOS's `/product` request models and their commands.
- `hosted`: the hosted MemOS API's request models, mapped onto the `/product` ones.
- `uploads`: the hosted API's knowledge-base files (multipart or JSON) as an add.
- `views`: entities as the answers show them (memories, task parts, receipts).
"""
