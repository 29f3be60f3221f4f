"""The FastAPI application: recommendations, similar items, search, feedback, new items, media
and the web page at ``/``. OpenAPI docs live at ``/docs`` (Swagger UI) and ``/redoc``, both
served from files that ship in the ``fastapi-offline`` package, so they work offline.

>>> from fuserec.serve import create_app          # doctest: +SKIP
>>> app = create_app("runs/demo/artifacts")       # doctest: +SKIP
"""

from __future__ import annotations

import hmac
import json
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastapi_offline
import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fuserec.data.schema import AUDIO, IMAGES
from fuserec.index.filters import MULTI_VALUE, AttributeFilter, FilterError, parse_filters
from fuserec.serve.journal import fsync_dir
from fuserec.serve.schemas import (
    AttributeOut,
    ErrorOut,
    FeedbackIn,
    FeedbackOut,
    FeedbackRemovedOut,
    HealthOut,
    ItemOut,
    ItemsPage,
    PopularOut,
    RecommendationsOut,
    ScoredItem,
    SearchOut,
    SimilarOut,
    StatsOut,
    UserDetailOut,
    UserOut,
    UsersPage,
)
from fuserec.serve.state import (
    ServeError,
    ServeLimits,
    ServingState,
    check_upload,
    modality_of_file,
)
from fuserec.serve.stats import RecommendationCounter

STATIC = Path(__file__).parent / "static"
#: Swagger UI and ReDoc bundles shipped in the fastapi-offline wheel (no CDN at run time)
DOCS_STATIC = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC_URL = "/docs-static"
TOKEN_ENV = "FUSEREC_TOKEN"
UPLOAD_FOLDER = "uploads"
#: bounds on the ``fields`` JSON of ``POST /items`` (checked before parsing)
MAX_FIELDS_CHARS = 64 * 1024
MAX_FIELDS_DEPTH = 16
_CHUNK = 1 << 16
#: recommendations from cached scores are ranked on the event loop up to this many items
#: (copying and ranking 100,000 scores takes about a millisecond); larger ones in the pool
INLINE_RANK_MAX_ITEMS = 100_000
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 409, 413, 422)}


def create_app(artifacts_dir: str | Path | None = None, token: str | None = None, *,
               state: ServingState | None = None, index: str = "faiss",
               index_config: Mapping[str, Any] | None = None,
               encoders: Mapping[str, Any] | None = None,
               limits: ServeLimits | None = None,
               journal: str | Path | None = None,
               public_reads: bool = True) -> FastAPI:
    """Build the app over an artifact folder (or a ready :class:`ServingState`).

    ``token`` (default: the ``FUSEREC_TOKEN`` environment variable; ``""`` for none) protects
    the write endpoints: requests must carry ``Authorization: Bearer <token>``.

    ``public_reads`` is the read-access policy for what reveals users: ``GET /users``,
    ``GET /users/{id}`` (a user's history) and ``GET /users/{id}/recommendations`` (whose
    explanations name the user's liked items). With a token and ``public_reads=False`` these
    need the token as well; with ``True`` (the default of this function, kept for callers that
    serve a public demo; ``fuserec serve`` defaults to ``False``) anyone may read them. The
    catalog itself (items, similar items, search, media, health, docs) is always public. Without
    a token nothing can be protected, so every endpoint is open whatever ``public_reads`` says.

    ``encoders`` overrides the encoders named in the manifest (e.g. small fakes in tests).
    ``journal``: a JSON-lines file that records feedback and new items and is replayed on start.
    """
    if state is None:
        if artifacts_dir is None:
            raise ValueError("create_app needs an artifacts folder or a state")
        state = ServingState.from_folder(artifacts_dir, index_kind=index,
                                         index_config=index_config, encoders=encoders,
                                         limits=limits, journal=journal)
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    token = token or None  # "" switches the check off, even when the variable is set
    limits = state.limits
    reads_need_token = token is not None and not public_reads
    app = FastAPI(
        title="fuserec",
        version="0.1.0",
        summary="Multimodal recommendations: text, image and audio content fused.",
        description="Recommendations with explanations, similar items, search by text, image "
                    "or audio, live feedback and new items. Write endpoints need "
                    "`Authorization: Bearer <token>` when the server was started with a token; "
                    "so do the user endpoints (`/users`, `/users/{id}`, "
                    "`/users/{id}/recommendations`) unless it was started with public reads.",
        responses=_ERRORS,
        docs_url=None,  # served below from local files instead of a CDN
        redoc_url=None,
    )
    app.state.serving = state
    # what this server recommended, for the overview (memory only; see fuserec.serve.stats)
    recommended = app.state.recommended = RecommendationCounter(state.n_items)
    app.add_middleware(_BodyLimit, max_bytes=limits.max_request_bytes)
    _install_error_handlers(app)

    # async: a plain-def dependency would cost every guarded request a thread-pool round trip
    # (and under load a wait for a free thread) just to compare two strings
    async def require_token(request: Request) -> None:
        if token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 token.encode()):
            raise _Unauthorized()

    async def require_read_token(request: Request) -> None:
        if reads_need_token:
            await require_token(request)

    item_cache: dict[int, ItemOut] = {}  # items never change once added

    def item_out(pos: int) -> ItemOut:
        cached = item_cache.get(pos)
        if cached is None:
            rec = state.item_record(pos)
            rec["images"] = [media_url(p) for p in rec["images"]]
            rec["audio"] = [media_url(p) for p in rec["audio"]]
            cached = item_cache[pos] = ItemOut(**rec)
        return cached

    def user_out(user_id: str) -> dict[str, Any]:
        rec = state.user_record(user_id)
        rec["images"] = [media_url(p) for p in rec["images"]]
        rec["audio"] = [media_url(p) for p in rec["audio"]]
        return rec

    def scored(results: list[dict[str, Any]]) -> list[ScoredItem]:
        return [ScoredItem(item=item_out(r["pos"]), score=round(r["score"], 6),
                           explanation=r.get("explanation")) for r in results]

    k_query = Query(10, ge=1, le=limits.max_k, description=f"How many items (1-{limits.max_k}).")
    filter_query = Query(
        [], alias="filter",
        description="Attribute filters, all must hold: `year>=2000`, `category==rock`, "
                    "`price<20`. Repeat the parameter for several.")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health", response_model=HealthOut, tags=["service"])
    async def health() -> HealthOut:
        """Liveness, sizes, the index in use and what queries the catalog supports."""
        ix = state.index
        return HealthOut(
            status="ok", items=state.n_items, users=len(state.users),
            model=(state.ranker or state.model).name, content_model=state.model.name,
            index={"kind": ix.name, "structure": getattr(ix, "built", None) or ix.name,
                   "exact": bool(ix.exact), "vectors": ix.ntotal, "dim": ix.dim},
            modalities=state.modalities,
            attributes=[c[len("attr_"):] for c in state.attribute_columns],
            text_fields=state.text_columns, write_requires_token=token is not None,
            reads_require_token=reads_need_token,
            limits={"max_k": limits.max_k, "max_upload_bytes": limits.max_upload_bytes,
                    "max_request_bytes": limits.max_request_bytes,
                    "max_text_chars": limits.max_text_chars})

    @app.get("/items", response_model=ItemsPage, tags=["items"])
    async def list_items(offset: int = Query(0, ge=0),
                         limit: int = Query(24, ge=1, le=200),
                         filters: list[str] = filter_query) -> ItemsPage:
        """Browse the catalog, optionally filtered by attributes."""
        mask = state.allow_mask(_filters(filters))
        positions = range(state.n_items) if mask is None else \
            [int(p) for p in mask.nonzero()[0]]
        page_pos = list(positions)[offset: offset + limit]
        return ItemsPage(total=len(positions), offset=offset,
                         items=[item_out(p) for p in page_pos])

    @app.get("/attributes", response_model=list[AttributeOut], tags=["items"])
    async def attributes() -> list[AttributeOut]:
        """The catalog's attributes with their ranges (numbers) or values (text), for filter
        controls."""
        out = []
        for column in state.attribute_columns:
            col = state.items[column]
            present = col.notna() & (col.astype("string").fillna("") != "")
            numeric = pd.to_numeric(col[present], errors="coerce")
            # the range over finite values: "inf" or "1e999" (a catalog string, or a new item's
            # JSON Infinity) would be sent as null, leaving a filter control without a bound
            finite = numeric[np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))]
            name = column[len("attr_"):]
            if present.any() and numeric.notna().all() and len(finite):
                out.append(AttributeOut(name=name, kind="number", min=float(finite.min()),
                                        max=float(finite.max()), present=int(present.sum())))
            else:
                # a value listing several ("Action|Comedy") counts for each of them
                values = (col[present].astype(str).str.split(MULTI_VALUE).explode().str.strip()
                          .loc[lambda v: v != ""].value_counts().index[:100].tolist())
                out.append(AttributeOut(name=name, kind="text", values=values,
                                        present=int(present.sum())))
        return out

    @app.get("/items/popular", response_model=PopularOut, tags=["items"])
    async def popular(k: int = k_query, filters: list[str] = filter_query) -> PopularOut:
        """The most popular items (most interacted with), optionally filtered; the score is
        the item's popularity. (An item whose id is ``popular`` is still reachable through
        its similar items and the catalog listing.)"""
        allow = state.allow_mask(_filters(filters))
        scores = np.zeros(state.n_items, np.float64)
        pop = np.asarray(state.popularity, np.float64)[: state.n_items]
        scores[: len(pop)] = pop
        candidates = np.arange(state.n_items) if allow is None else np.flatnonzero(allow)
        order = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
        return PopularOut(results=scored([{"pos": int(p), "score": float(scores[p])}
                                          for p in order]))

    @app.get("/items/{item_id}", response_model=ItemOut, tags=["items"])
    async def get_item(item_id: str) -> ItemOut:
        """One item with its text, attributes and media URLs."""
        return item_out(state.position(item_id))

    @app.get("/items/{item_id}/similar", response_model=SimilarOut, tags=["items"])
    async def similar(item_id: str, k: int = k_query,
                      filters: list[str] = filter_query) -> SimilarOut:
        """Items nearest to this one in the fused content space."""
        results = state.similar(item_id, k, _filters(filters))
        return SimilarOut(item=item_out(state.position(item_id)), results=scored(results))

    @app.get("/users", response_model=UsersPage, tags=["users"],
             dependencies=[Depends(require_read_token)])
    async def list_users(offset: int = Query(0, ge=0),
                         limit: int = Query(50, ge=1, le=500)) -> UsersPage:
        """Users of the catalog, then users created by feedback. Needs the token when the
        server has one and was not started with public reads."""
        ids = list(state.user_row) + [u for u in state.feedback if u not in state.user_row]
        return UsersPage(total=len(ids), offset=offset,
                         users=[UserOut(**user_out(u)) for u in ids[offset: offset + limit]])

    @app.get("/users/{user_id}", response_model=UserDetailOut, tags=["users"],
             dependencies=[Depends(require_read_token)])
    async def get_user(user_id: str) -> UserDetailOut:
        """A user, with some of the items they interacted with. Needs the token when the
        server has one and was not started with public reads."""
        if not state.has_user(user_id):
            raise ServeError(f"there is no user with id {user_id!r}", 404)
        liked = state.seen_positions(user_id)[:12]
        return UserDetailOut(**user_out(user_id), liked=[item_out(int(p)) for p in liked])

    @app.get("/users/{user_id}/recommendations", response_model=RecommendationsOut,
             tags=["users"], dependencies=[Depends(require_read_token)])
    async def recommendations(
        user_id: str, k: int = k_query,
        diversity: float = Query(0.0, ge=0.0, le=1.0,
                                 description="MMR trade-off: 0 = pure relevance, 1 = most "
                                             "diverse."),
        explain: bool = Query(False, description="Add why each item was recommended."),
        filters: list[str] = filter_query,
    ) -> Response:
        """Top-k unseen items for a user (reflects feedback sent since the server started).
        Needs the token when the server has one and was not started with public reads: the
        results and their explanations reveal what the user liked."""
        parsed = _filters(filters)
        if (not explain and diversity == 0 and state.n_items <= INLINE_RANK_MAX_ITEMS
                and state.scores_cached(user_id)):
            # cached scores: a copy and a top-k (tens of microseconds) cost less than the
            # thread round trip, whose GIL handoffs with a busy loop made the tail (p99 49
            # against 114-130 ms under load: BENCHMARKS.md, "Reliability")
            results = state.recommend(user_id, k, diversity, parsed, explain)
        else:
            # computing scores, explanations or MMR takes milliseconds the loop must not wait
            # for: the thread pool, one round trip (the response is built on the loop; a plain
            # def would take a second one to validate it)
            results = await run_in_threadpool(state.recommend, user_id, k, diversity, parsed,
                                              explain)
        recommended.add(r["pos"] for r in results)
        return _json(RecommendationsOut(user_id=user_id, k=k, diversity=diversity,
                                        filters=[str(f) for f in parsed],
                                        results=scored(results)))

    @app.post("/users/{user_id}/feedback", response_model=FeedbackOut, tags=["users"],
              dependencies=[Depends(require_token)])
    async def feedback(user_id: str, body: FeedbackIn) -> Response:
        """Record an interaction. The next recommendations fold it in, no retraining; an
        unknown user id creates a new user."""
        # async: the journal's committer thread syncs the write (one fsync for every write
        # queued meanwhile) and applies it; no thread of the pool waits per request, so
        # concurrent writers do not queue for threads or wake each other up
        new_user = not state.has_user(user_id)
        n = await state.add_feedback_async(user_id, body.item_id, body.weight)
        return _json(FeedbackOut(user_id=user_id, item_id=body.item_id, n_feedback=n,
                                 new_user=new_user))

    @app.delete("/users/{user_id}/feedback/{item_id}", response_model=FeedbackRemovedOut,
                tags=["users"], dependencies=[Depends(require_token)])
    async def remove_feedback(user_id: str, item_id: str) -> FeedbackRemovedOut:
        """Undo a user's feedback on an item (an "undo" of a like): journaled like feedback, so
        a restart replays it too. 404 when the user has no feedback on that item; what the
        catalog's own interactions say about the user stays."""
        n, weight = await state.remove_feedback_async(user_id, item_id)
        return FeedbackRemovedOut(user_id=user_id, item_id=item_id, removed_weight=weight,
                                  n_feedback=n)

    @app.get("/stats", response_model=StatsOut, tags=["service"])
    async def stats(k: int = k_query) -> StatsOut:
        """The items this server recommended most often since it started (counted in memory
        over every recommendation answer; no user is named)."""
        top = recommended.top(k)
        return StatsOut(answers=recommended.answers, recommended=recommended.total,
                        distinct_items=recommended.distinct(),
                        most_recommended=scored([{"pos": p, "score": float(c)}
                                                 for p, c in top]))

    @app.post("/search", response_model=SearchOut, tags=["search"])
    def search(text: str | None = Form(None, description="A text query."),
               file: UploadFile | None = File(
                   None, description="An image (jpg, png, webp, gif, bmp) or audio clip "
                                     "(wav, flac, ogg, mp3)."),
               k: int = Form(10, ge=1, le=limits.max_k),
               filters: list[str] = Form([], alias="filter")) -> SearchOut:
        """Items nearest to a text, an uploaded image or an uploaded audio clip (or several),
        encoded by the same encoders as the catalog."""
        parsed = _filters(filters)
        query: dict[str, Any] = {}
        if text and text.strip():
            query["text"] = text.strip()
        with tempfile.TemporaryDirectory(prefix="fuserec-search-") as tmp:
            files = []
            if file is not None and file.filename:
                path, modality = _save_upload(file, Path(tmp), "query", limits)
                files.append((path, modality))
                query[modality] = file.filename
            results = state.search(text, files, k, parsed)
        return SearchOut(query=query, results=scored(results))

    @app.post("/items", response_model=ItemOut, status_code=201, tags=["items"],
              dependencies=[Depends(require_token)])
    def add_item(item_id: str = Form(..., alias="id", description="A new, unique item id."),
                 fields: str = Form("{}", description='JSON object of text fields and '
                                                      'attributes, e.g. {"title": "Rain", '
                                                      '"attr_year": 2024}.'),
                 images: list[UploadFile] = File([], description="Image files."),
                 audio: list[UploadFile] = File([], description="Audio files.")) -> ItemOut:
        """Add an item while serving: its media are validated with the catalog's checks,
        stored under the catalog root, encoded, fused and indexed."""
        parsed = _json_object(fields or "{}", "fields")
        parsed = {_field_name(state, str(k)): v for k, v in parsed.items()}
        uploads = [(f, IMAGES, "image") for f in images if f.filename] + \
                  [(f, AUDIO, "audio") for f in audio if f.filename]
        if len(uploads) > limits.max_files_per_item:
            raise ServeError(f"at most {limits.max_files_per_item} files per item", 422)
        for up, _, expected in uploads:  # wrong file types are refused before anything is saved
            modality = _upload_modality(up.filename or "")
            if modality != expected:
                raise ServeError(f"{up.filename!r} was sent as {expected} but is "
                                 f"{modality}", 422)
        # the id is checked and held (422 / 409) before a file is written: a refused request
        # writes nothing, and a concurrent request for the same id is refused with 409
        with state.reserve_item(item_id):
            media: dict[str, list[str]] = {IMAGES: [], AUDIO: []}
            written: list[Path] = []
            folder: Path | None = None
            try:
                if uploads:  # a fresh folder of its own: no other item's file can be overwritten
                    folder_rel, folder = _new_upload_folder(state.catalog_root)
                    for n, (up, column, _) in enumerate(uploads):
                        path, _ = _save_upload(up, folder, f"{column}_{n}", limits, written,
                                               sync=True)
                        media[column].append(f"{folder_rel}/{path.name}")
                    fsync_dir(folder)  # the files survive a crash once the item is journaled
                    fsync_dir(folder.parent)
                state.add_item(item_id, parsed, media, reserved=True)
            except BaseException:
                for path in written:  # only what this request wrote
                    path.unlink(missing_ok=True)
                if folder is not None:
                    with suppress(OSError):
                        folder.rmdir()
                raise
        return item_out(state.position(item_id))

    @app.get("/media/{path:path}", tags=["media"])
    async def media(path: str) -> FileResponse:
        """A media file of an item or user of the catalog (nothing else is reachable)."""
        return FileResponse(state.media_file(path),
                            headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg")

    @app.get("/docs", include_in_schema=False)
    async def swagger_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title="fuserec - API docs",
            swagger_js_url=f"{root}{DOCS_STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}/static/favicon.svg",
            oauth2_redirect_url=f"{root}{app.swagger_ui_oauth2_redirect_url}",
            swagger_ui_parameters={"validatorUrl": None})  # no call to validator.swagger.io

    @app.get(app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect",
             include_in_schema=False)
    async def swagger_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title="fuserec - ReDoc",
                              redoc_js_url=f"{root}{DOCS_STATIC_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/static/favicon.svg",
                              with_google_fonts=False)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=DOCS_STATIC), name="docs-static")
    return app


def _json(model: BaseModel) -> Response:
    """``model`` as a JSON response, serialized once by pydantic (the route's
    ``response_model`` still documents it). A returned model is dumped, validated again and
    serialized by FastAPI: three passes over every item of a recommendation list, on the event
    loop, for each of the hottest requests."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


def media_url(relative: str) -> str:
    """The URL under which :func:`create_app` serves a catalog media path."""
    return "/media/" + quote(relative)


def json_depth(text: str, limit: int) -> int:
    """The nesting depth of the JSON ``text`` (brackets inside strings do not count), found by
    one linear scan that stops as soon as it passes ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif ch in "]}":
            depth -= 1
    return deepest


def _json_object(text: str, name: str) -> dict[str, Any]:
    """Parse a JSON object from a form field, refusing (422) what is too large or too deeply
    nested before the parser sees it (deep nesting makes ``json.loads`` recurse until
    RecursionError)."""
    if len(text) > MAX_FIELDS_CHARS:
        raise ServeError(f"{name} is {len(text):,} characters of JSON; the limit is "
                         f"{MAX_FIELDS_CHARS:,}", 422)
    if json_depth(text, MAX_FIELDS_DEPTH) > MAX_FIELDS_DEPTH:
        raise ServeError(f"{name} is nested more than {MAX_FIELDS_DEPTH} levels deep; send a "
                         f"flat JSON object of text fields and attributes", 422)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServeError(f"{name} must be a JSON object: {exc.msg}", 422) from None
    except RecursionError:  # a second guard; the depth check above should make it unreachable
        raise ServeError(f"{name} is nested too deeply", 422) from None
    if not isinstance(parsed, dict):
        raise ServeError(f"{name} must be a JSON object", 422)
    return parsed


def _filters(texts: list[str]) -> list[AttributeFilter]:
    try:
        return parse_filters(texts)
    except FilterError as exc:
        raise ServeError(str(exc), 422) from None


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


def _field_name(state: ServingState, key: str) -> str:
    """Accept attributes with or without their ``attr_`` prefix."""
    if key in state.text_columns or key in state.attribute_columns:
        return key
    return f"attr_{key}" if f"attr_{key}" in state.attribute_columns else key


def _upload_modality(name: str) -> str:
    """``"image"`` or ``"audio"`` from an uploaded file's name; ServeError 415 otherwise."""
    modality = modality_of_file(name)
    if modality is None:
        raise ServeError(f"{name!r} is not a supported file type; send an image (.jpg .jpeg "
                         f".png .webp .gif .bmp) or audio (.wav .flac .ogg .mp3)", 415)
    return modality


def _new_upload_folder(root: Path) -> tuple[str, Path]:
    """Create ``uploads/<random hex>`` under ``root`` (a new folder, never an existing one);
    returns its path relative to ``root`` (as stored with the item) and its full path."""
    parent = root / UPLOAD_FOLDER
    if not parent.is_dir():
        parent.mkdir(parents=True, exist_ok=True)
        fsync_dir(root)
    while True:
        name = uuid.uuid4().hex
        try:
            (parent / name).mkdir()
        except FileExistsError:  # practically never: 122 random bits
            continue
        return f"{UPLOAD_FOLDER}/{name}", parent / name


def _save_upload(upload: UploadFile, folder: Path, stem: str, limits: ServeLimits,
                 written: list[Path] | None = None, sync: bool = False) -> tuple[Path, str]:
    """Stream an upload to the new file ``folder/stem<ext>`` within the size limit and check it.

    The file is created exclusively (an existing file is never replaced: FileExistsError) and
    removed again if the upload is refused; once kept it is appended to ``written``. ``sync``
    fsyncs its data before the check.
    """
    name = upload.filename or ""
    modality = _upload_modality(name)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{stem}{Path(name).suffix.lower()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(final, flags, 0o644)
    try:
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise ServeError(f"{name!r} is larger than the upload limit of "
                                     f"{_size(limits.max_upload_bytes)}", 413)
                out.write(chunk)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        if size == 0:
            raise ServeError(f"{name!r} is empty", 422)
        check_upload(final, modality, limits)
    except BaseException:
        final.unlink(missing_ok=True)  # the file this call created, nothing else
        raise
    if written is not None:
        written.append(final)
    return final, modality


class _Unauthorized(ServeError):
    def __init__(self) -> None:
        super().__init__("this endpoint needs a token: send 'Authorization: Bearer <token>' "
                         "(the token the server was started with)", 401)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, str(exc), headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is no endpoint {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = [str(x) for x in err.get("loc", ())]
            where = {"query": "query parameter", "path": "path parameter", "body": "body",
                     "form": "form field"}.get(loc[0], loc[0]) if loc else "request"
            name = ".".join(loc[1:])
            msg = err.get("msg", "is invalid")
            if err.get("type") == "missing":
                msg = "is required"
            parts.append(f"{where} {name!r}: {msg}" if name else f"{where}: {msg}")
        return _error(422, "; ".join(parts) or "invalid request")


class _BodyLimit:
    """Refuse request bodies over ``max_bytes`` (by Content-Length, and while streaming)."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        seen = 0
        started = False

        async def counted_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Callable) -> None:
        response = _error(413, f"the request is larger than the limit of "
                               f"{_size(self.max_bytes)}")
        await send({"type": "http.response.start", "status": 413,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass
