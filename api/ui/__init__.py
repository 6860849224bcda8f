"""Server-rendered dashboards and the declaration page (issue 6).

Why server-rendered templates plus a little vanilla JavaScript: the pages must work on the
phones and old office PCs of establishments, load nothing from a CDN, and stay readable by
the next maintainer. The server renders the frame and public reference data (department
names, the map); every figure comes from the same ``/v1`` API and the same bearer tokens as
any other client, called from the browser. The token lives in ``sessionStorage`` (one tab,
gone when it closes), never in a cookie, so these HTML pages need no CSRF protection and
carry no personal data.

Modules: ``pages`` (the HTML routes) rendered by ``render``; ``signin`` (the local issuer's
sign-in and the OIDC configuration the sign-in page needs); ``me`` (``/ui/api/moi``, what
the signed-in user declares for); ``geo`` (commune names and centres for the maps);
``routes.install`` mounts them all.
"""
