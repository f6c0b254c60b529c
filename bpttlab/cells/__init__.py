"""Built-in cell plugins: elman, jordan (and the interface every cell implements, in base)."""
