"""The audit's integrity: sealed, hash-chained segments (``service``), their SQL
(``repository``)."""
