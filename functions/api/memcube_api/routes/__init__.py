"""One router per API surface: `product` (MemOS's `/product`), `hosted` (the hosted MemOS API)."""
