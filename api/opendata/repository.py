"""The open-data aggregate in SQL: one row per department × competent authority × category
with at least one establishment, from the units' ``current`` snapshots (within 69 the
Métropole de Lyon and the Rhône are distinct rows). Foster carers are not read at all."""

from typing import Any

import asyncpg

AVAILABILITY_SQL = """
WITH offer AS (
    -- aggregate on the codes first, name after: the sort behind count(DISTINCT) then
    -- compares three keys, not five (the names add nothing to the grouping)
    SELECT s.department, s.authority, s.category,
           count(DISTINCT s.id) AS structures,
           count(u.id) AS units,
           count(c.unit_id) AS units_declared,
           coalesce(sum(c.installed), 0) AS installed,
           coalesce(sum(c.occupied), 0) AS occupied,
           coalesce(sum(c.reserved), 0) AS reserved,
           coalesce(sum(c.available), 0) AS available,
           min(c.declared_at) AS oldest_declaration,
           max(c.declared_at) AS latest_declaration
      FROM structures s
      LEFT JOIN units u ON u.structure_id = s.id
      LEFT JOIN capacity_snapshots c ON c.unit_id = u.id AND c.temporality = 'current'
     GROUP BY s.department, s.authority, s.category
)
SELECT o.department, d.name AS department_name, o.authority, a.name AS authority_name,
       o.category, o.structures, o.units, o.units_declared, o.installed, o.occupied,
       o.reserved, o.available, o.oldest_declaration, o.latest_declaration
  FROM offer o
  JOIN departments d ON d.code = o.department
  JOIN authorities a ON a.code = o.authority
 ORDER BY o.department, o.authority, o.category
"""


async def availability(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(AVAILABILITY_SQL)]
