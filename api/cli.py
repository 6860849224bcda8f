"""The ``places`` command: migrate, seed, import-finess, import-agrements, token, run, feed,
audit seal|verify, purge.

An entry point: each command reads the settings from the environment once, at its start,
and passes what the code it calls needs (DSN, keys, server address); nothing below it reads
the environment again.
"""

import asyncio
import logging
import sys
import time
from typing import Annotated

import typer
from rich.console import Console

from api.settings import get_settings

app = typer.Typer(help="Places — national placement availability service.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def migrate() -> None:
    """Create the database and PostGIS when missing, then apply Alembic migrations."""
    from api.db import ensure_database
    from api.db import migrate as run_migrations

    dsn = get_settings().owner_dsn  # the schema's owner: it creates the service's role too
    created = asyncio.run(ensure_database(dsn))
    if created:
        console.print("database created")
    run_migrations(dsn)
    console.print("migrations applied")


@app.command()
def seed(
    seed_value: Annotated[int | None, typer.Option("--seed", help="Dataset seed.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing dataset.")] = False,
    if_empty: Annotated[bool, typer.Option(help="Seed only when no structure exists.")] = False,
    scale: Annotated[float, typer.Option(help="Dataset size (1.0 = national).")] = 1.0,
) -> None:
    """Load reference data (departments, communes) and the synthetic national dataset."""
    from api.db import connect
    from seed.national import seed_national
    from seed.reference import load_reference

    settings = get_settings()

    async def _run() -> None:
        async with connect(settings.owner_dsn) as conn:  # it may TRUNCATE the offer
            counts = await load_reference(conn)
            console.print(f"reference data: {counts}")
            existing = await conn.fetchval("SELECT count(*) FROM structures")
            if existing and if_empty:
                console.print(f"dataset present ({existing} structures): nothing to seed")
                return
            start = time.perf_counter()
            summary = await seed_national(
                conn,
                seed_value or settings.seed,
                progress=True,
                replace=replace,
                scale=scale,
            )
            console.print(summary.summary_table())
            console.print(f"seeded in {time.perf_counter() - start:.1f} s")

    asyncio.run(_run())


@app.command("import-finess")
def import_finess(
    file: Annotated[str, typer.Argument(help="The FINESS extract (etalab-cs1100507-stock-….csv).")],
    batch_size: Annotated[int, typer.Option(help="Structures merged per transaction.")] = 500,
) -> None:
    """Import the official FINESS extract: child-protection establishments, idempotently."""
    from pathlib import Path

    from api.db import connect
    from interop.finess_import import import_file

    if not Path(file).is_file():
        console.print(f"[red]{file}: fichier introuvable[/red]")
        raise typer.Exit(2)
    dsn = get_settings().database_url

    async def _run() -> None:
        async with connect(dsn) as conn:
            report = await import_file(conn, file, batch_size=batch_size, progress=True)
        console.print(report.summary_table())

    asyncio.run(_run())


@app.command("import-agrements")
def import_agrements(
    file: Annotated[str, typer.Argument(help="The national agrément file (CSV, docs/api.md).")],
    batch_size: Annotated[int, typer.Option(help="Lines merged per transaction.")] = 1000,
    rejects: Annotated[
        str | None, typer.Option(help="Write the refused lines to this CSV file.")
    ] = None,
) -> None:
    """Import the national agrément file: assistants familiaux and their agréments,
    idempotently, batch by batch; prints the refused lines."""
    from pathlib import Path

    from api.db import connect
    from interop.agrements_import import FileRefused, import_file

    if not Path(file).is_file():
        console.print(f"[red]{file}: fichier introuvable[/red]")
        raise typer.Exit(2)
    dsn = get_settings().database_url

    async def _run() -> None:
        async with connect(dsn) as conn:
            report = await import_file(conn, file, batch_size=batch_size, progress=True)
        console.print(report.summary_table())
        if rejects:
            report.write_rejections(rejects)
            console.print(f"lignes refusées écrites dans {rejects}")

    try:
        asyncio.run(_run())
    except FileRefused as exc:
        console.print(f"[red]{file}: {exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def token(
    role: Annotated[
        str | None,
        typer.Option(
            help="structure | carer | department | national | authority_admin | operator"
            " (acts by role: PLACES_LOCAL_ROLES=true); without, a person's token (--sub), whose"
            " habilitations decide."
        ),
    ] = None,
    authority: Annotated[
        str | None,
        typer.Option(
            help="Roles department and authority_admin: competent authority (69M, 69D, 20R,"
            " 6AE, 13…)."
        ),
    ] = None,
    department: Annotated[
        str | None,
        typer.Option(help="Role department, former scope: a department of one authority only."),
    ] = None,
    finess: Annotated[str | None, typer.Option(help="FINESS number.")] = None,
    carer_id: Annotated[str | None, typer.Option(help="Carer id (role carer).")] = None,
    sub: Annotated[str | None, typer.Option(help="Subject.")] = None,
    ttl_minutes: Annotated[
        int | None,
        typer.Option(help="Lifetime in minutes (at most PLACES_TOKEN_MAX_LIFETIME_MINUTES)."),
    ] = None,
) -> None:
    """Print a token signed by the local issuer (no network). A placement service's or an
    authority administrator's token (``--role department``, ``--role authority_admin``) is
    scoped by ``--authority``; ``--department`` is mapped to its
    authority when it has only one (``2A`` → ``20R``), and refused for ``69`` (``69M`` or
    ``69D``)."""
    from api.auth import issue_token

    try:
        print(
            issue_token(
                role,
                sub=sub,
                authority=authority,
                department=department,
                finess=finess,
                carer_id=carer_id,
                ttl_minutes=ttl_minutes,
                settings=get_settings(),
            )
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _metrics_folder() -> str | None:
    """Where the workers write their metrics for ``/metrics`` to add up (``api.metrics``):
    ``PROMETHEUS_MULTIPROC_DIR`` if given (a container's emptyDir), else a new temporary
    folder (returned, for the caller to remove after the run); emptied of a previous run's
    files. Named here, before any worker imports prometheus_client, which reads it at
    import."""
    import glob
    import os
    import tempfile

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    folder = given or tempfile.mkdtemp(prefix="places-metrics-")
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, "*.db")):
        os.remove(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return None if given else folder


@app.command()
def run(
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Serve the API. Without a reachable Redis, one worker with the in-process bus."""
    import shutil

    import uvicorn

    from api.auth import ensure_local_keys
    from api.logging import configure
    from api.ui.signin import check_dev_signin
    from realtime.bus import connect_redis, connect_sentinel

    settings = get_settings()
    try:
        check_dev_signin(settings)
    except ValueError as exc:
        raise SystemExit(f"places run: {exc}") from exc
    configure(settings.log_json)
    log = logging.getLogger("places")
    ensure_local_keys(settings)
    n = workers or settings.workers

    async def _redis_up() -> bool:
        if settings.redis_sentinels:
            found = await connect_sentinel(settings.redis_sentinels, settings.redis_master_name)
            if found is None:
                return False
            sentinel, master = found
            await master.aclose()
            for s in sentinel.sentinels:
                await s.aclose()
            return True
        client = await connect_redis(settings.redis_url)
        if client is None:
            return False
        await client.aclose()
        return True

    if n > 1 and not asyncio.run(_redis_up()):
        log.warning("Redis unreachable (%s): one worker, in-process event bus", settings.redis_url)
        n = 1
    log.info(
        "serving on http://%s:%s with %d worker(s)", host or settings.host, port or settings.port, n
    )
    made = _metrics_folder()
    try:
        uvicorn.run(
            "api.main:app_factory",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=n,
            log_level="info",
            access_log=False,
            # X-Forwarded-For/-Proto from PLACES_TRUSTED_PROXIES only (uvicorn would trust
            # 127.0.0.1 by default: any local client, a proxy's own neighbour, could name itself).
            proxy_headers=True,
            forwarded_allow_ips=settings.trusted_proxies or "",
            # Events are small JSON: compressing each one for each of a thousand sockets costs
            # more CPU than the bandwidth it saves.
            ws_per_message_deflate=False,
            # The header block is bounded by the server, before the app: h11 refuses a request
            # whose incomplete head exceeds the limit (400) and closes that connection. uvicorn's
            # httptools protocol has no such limit (it would buffer any header), hence h11.
            http="h11",
            h11_max_incomplete_event_size=settings.max_header_bytes,
        )
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


@app.command()
def feed(
    authority: Annotated[
        str | None, typer.Option(help="Competent authority (69M, 20R, 6AE, 13…): its feed.")
    ] = None,
    department: Annotated[
        str | None,
        typer.Option(help="Department of one authority (13, 2A…): that authority's feed."),
    ] = None,
    national: Annotated[bool, typer.Option("--national", help="The national feed.")] = False,
    url: Annotated[str | None, typer.Option(help="Server, default http://HOST:PORT.")] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="PLACES_TOKEN", help="Bearer token; default: a local dev token."),
    ] = None,
    last_event_id: Annotated[str | None, typer.Option(help="Resume after this event.")] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="Raw JSON, one per line.")] = False,
) -> None:
    """Print a live feed's events as they come; resumes after a disconnect."""
    from api.auth import issue_token
    from geo.referential import authorities_of_department, load_authorities
    from realtime.client import run as run_feed

    if [bool(authority), bool(department), national].count(True) != 1:
        print("choose one feed: --authority CODE, --department CODE or --national", file=sys.stderr)
        raise typer.Exit(2)
    shared = authorities_of_department(department) if department else ()
    if len(shared) > 1:
        print(
            f"department {department} is shared by {' and '.join(shared)}: use --authority",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    settings = get_settings()
    if not token and national:
        token = issue_token("national", settings=settings)
    elif not token:  # a local dev token for that feed's authority
        code = authority or (shared[0] if shared else None)
        if code is None or code not in load_authorities():
            print(f"unknown feed {authority or department}", file=sys.stderr)
            raise typer.Exit(2)
        token = issue_token("department", authority=code, settings=settings)
    raise typer.Exit(
        run_feed(
            base_url=url or f"http://{settings.host}:{settings.port}",
            token=token,
            department=department,
            last_event_id=last_event_id,
            count=count,
            json_lines=json_lines,
            authority=authority,
        )
    )


audit_app = typer.Typer(help="The audit's sealed, hash-chained segments.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal the audit entries written since the last seal and print the head (segment, last
    entry, hash): keep that line outside the database, then `places audit verify --head`."""
    from api.audit.service import seal
    from api.db import connect

    async def _run() -> int:
        async with connect(get_settings().database_url) as conn:
            head = await seal(conn)
        if head is None:
            console.print("[yellow]not sealed now: another sealer, or a long transaction[/yellow]")
            return 1
        console.print(f"sealed {head.sealed_now} new segment(s)")
        print(head.line())
        return 0

    raise typer.Exit(asyncio.run(_run()))


@audit_app.command("verify")
def audit_verify(
    head: Annotated[
        str | None, typer.Option(help="A head printed earlier by `places audit seal`.")
    ] = None,
) -> None:
    """Recompute the chain of seals and each live segment's entries; exit 1 on any mismatch,
    naming the segment."""
    from api.audit.service import verify
    from api.db import connect

    async def _run() -> int:
        async with connect(get_settings().database_url) as conn:
            result = await verify(conn, head)
        checkpoint = (
            f", checkpoint segment {result.checkpoint} ({result.purged} purged)"
            if result.checkpoint
            else ""
        )
        console.print(
            f"{result.segments} segment(s), {result.entries} entries checked{checkpoint};"
            f" {result.unsealed} entries not sealed yet"
        )
        if result.head is not None:
            print(result.head.line())
        for problem in result.problems:
            print(f"TAMPERED: {problem}", file=sys.stderr)
        if result.ok:
            console.print("[green]audit chain intact[/green]")
        return 0 if result.ok else 1

    raise typer.Exit(asyncio.run(_run()))


@app.command()
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete what is older than its retention period (PLACES_RETENTION_*), as the schema's
    owner; the audit by whole sealed segments only."""
    from rich.table import Table

    from api.db import connect
    from api.retention import purge as run_purge

    settings = get_settings()

    async def _run() -> None:
        async with connect(settings.owner_dsn) as conn:
            results = await run_purge(conn, settings, dry_run=dry_run)
        table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
        for column in ("kind", "retention (days)", "before", "rows", "detail"):
            table.add_column(column)
        for r in results:
            table.add_row(r.kind, str(r.days), f"{r.cutoff:%Y-%m-%d %H:%M}", str(r.rows), r.detail)
        Console().print(table)

    asyncio.run(_run())


@app.command("grant")
def grant_habilitation(
    sub: Annotated[str, typer.Option(help="The person's sub at the identity provider.")],
    function: Annotated[
        str, typer.Option(help="platform_operator, national_analyst, authority_admin…")
    ],
    issuer: Annotated[
        str | None, typer.Option(help="The identity provider (default PLACES_JWT_ISSUER).")
    ] = None,
    authority: Annotated[str | None, typer.Option(help="The authority (its functions).")] = None,
    finess: Annotated[str | None, typer.Option(help="Establishment functions.")] = None,
    carer_id: Annotated[str | None, typer.Option(help="Carer function.")] = None,
) -> None:
    """Grant a habilitation from the command line (database access): how the first platform
    operators and national analysts are made; audited as ``cli:grant`` and effective at once
    on running workers (NOTIFY)."""
    from uuid import UUID

    import asyncpg

    from api import changes
    from api.auth import Principal
    from api.db import init_connection
    from api.permissions import FUNCTIONS, SCOPE_CLAIM
    from api.persons import repository

    settings = get_settings()
    if function not in FUNCTIONS:
        console.print(f"[red]unknown function {function}; one of {', '.join(FUNCTIONS)}[/red]")
        raise typer.Exit(2)
    needed = SCOPE_CLAIM.get(FUNCTIONS[function].role)
    given = {"authority": authority, "finess": finess, "carer_id": carer_id}
    if needed and not given[needed]:
        console.print(f"[red]{function} needs --{needed.replace('_', '-')}[/red]")
        raise typer.Exit(2)

    async def _run() -> int:
        conn = await asyncpg.connect(settings.database_url)
        await init_connection(conn)
        try:
            async with conn.transaction():
                person = await repository.upsert_person(
                    conn, issuer or settings.jwt_issuer, sub, None, None
                )
                new_id = await repository.insert(
                    conn,
                    person,
                    function,
                    authority,
                    finess,
                    UUID(carer_id) if carer_id else None,
                    "cli:grant",
                )
                await changes.audit(
                    conn,
                    Principal(sub="cli:grant", role="operator"),
                    "habilitation.grant",
                    "habilitation",
                    str(new_id),
                    None,
                    {"person_id": person, "function": function},
                    authority=authority,
                )
                await repository.notify(conn)
            return new_id
        finally:
            await conn.close()

    print(asyncio.run(_run()))


if __name__ == "__main__":
    app()
