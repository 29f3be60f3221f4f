"""Feedback and new items: the write side of :class:`ServingState`, journaled before they
take effect and replayed on start."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from fuserec.data.schema import (
    AUDIO,
    ID,
    IMAGES,
    record_text,
)
from fuserec.fuse.base import View
from fuserec.serve.journal import JournalError
from fuserec.serve.limits import (
    _ID_PATTERN,
    ServeError,
    _media_columns,
    check_item_id,
)

T = TypeVar("T")


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Hand a committed write's outcome to its coroutine (on the event loop's thread)."""
    if future.done():  # the request was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Writes:
    """Mixin of :class:`~fuserec.serve.state.ServingState`: everything that changes it.

    Every write is checked, then committed: with a journal, its line is queued for the next
    group commit and its change to memory is applied by the journal's committer thread right
    after the fsync that covers the line, under the state's lock, in journal order (so memory
    goes through the same sequence a replay repeats, and no lock is held while the disk
    syncs). The caller is answered after that: a thread waits (:meth:`add_feedback`), a
    coroutine awaits without holding a thread (:meth:`add_feedback_async`, the HTTP server's
    path).
    """

    # -- writes ----------------------------------------------------------------------------
    def add_feedback(self, user_id: str, item_id: str, weight: float = 1.0) -> int:
        """Record an interaction; the user's vector is folded in again on next use.

        Works for users unknown to the catalog: they are created from their feedback alone.
        Returns the number of feedback interactions the user now has.
        """
        return self._commit(*self._feedback_write(user_id, item_id, weight))

    async def add_feedback_async(self, user_id: str, item_id: str, weight: float = 1.0) -> int:
        """:meth:`add_feedback` for an event loop: it waits for the fsync without a thread."""
        return await self._commit_async(*self._feedback_write(user_id, item_id, weight))

    def remove_feedback(self, user_id: str, item_id: str) -> tuple[int, float]:
        """Undo the feedback ``user_id`` gave ``item_id`` (all of its weight), journaled like
        feedback so a replay ends in the same state. Interactions of the catalog itself stay.

        Returns (feedback interactions the user has left, the weight removed); ServeError 404
        when the user has no feedback on that item.
        """
        return self._commit(*self._unfeedback_write(user_id, item_id))

    async def remove_feedback_async(self, user_id: str, item_id: str) -> tuple[int, float]:
        """:meth:`remove_feedback` for an event loop."""
        return await self._commit_async(*self._unfeedback_write(user_id, item_id))

    def _feedback_write(self, user_id: str, item_id: str, weight: float
                        ) -> tuple[dict[str, Any], Callable[[], int]]:
        """Check a feedback write; its journal event and its change to memory."""
        if not _ID_PATTERN.fullmatch(user_id or ""):
            raise ServeError("user ids are 1-128 characters: letters, digits and . _ : @ -", 422)
        if not (0 < weight <= self.limits.max_feedback_weight):
            raise ServeError(f"weight must lie in (0, {self.limits.max_feedback_weight:g}]", 422)
        pos, weight = self.position(item_id), float(weight)
        event = {"event": "feedback", "user": user_id, "item": item_id, "weight": weight}
        return event, lambda: self._apply_feedback(user_id, pos, weight)

    def _unfeedback_write(self, user_id: str, item_id: str
                          ) -> tuple[dict[str, Any], Callable[[], tuple[int, float]]]:
        """Check an undo (there is feedback to remove); its journal event and its change."""
        pos = self.position(item_id)
        if pos not in self.feedback.get(user_id, {}):  # refused before it reaches the journal
            raise ServeError(f"user {user_id!r} has no feedback on item {item_id!r} to "
                             f"remove", 404)

        def apply() -> tuple[int, float]:
            removed = self.feedback.get(user_id, {}).get(pos)
            n = self._apply_unfeedback(user_id, pos)
            if removed is None:  # a concurrent undo of the same like came first (no-op line)
                raise ServeError(f"user {user_id!r} has no feedback on item {item_id!r} to "
                                 f"remove", 404)
            return n, removed

        return {"event": "unfeedback", "user": user_id, "item": item_id}, apply

    def _apply_feedback(self, user_id: str, pos: int, weight: float) -> int:
        fb = dict(self.feedback.get(user_id, {}))
        fb[pos] = fb.get(pos, 0.0) + weight
        self.feedback[user_id] = fb  # a new dict: a reader never sees one half-changed
        self._forget_user(user_id)
        return len(fb)

    def _apply_unfeedback(self, user_id: str, pos: int) -> int:
        """Remove the user's feedback on ``pos`` if there is any (a no-op otherwise, live and
        in replay alike: two concurrent undos of one like both reach the journal)."""
        fb = self.feedback.get(user_id)
        if fb is None or pos not in fb:
            return len(fb or {})
        fb = dict(fb)
        del fb[pos]
        # an emptied user is kept (with no feedback): the id stays known, as after a like
        self.feedback[user_id] = fb
        self._forget_user(user_id)
        return len(fb)

    def _forget_user(self, user_id: str) -> None:
        """Drop what was computed from the user's history; the next read recomputes it."""
        self._seen_arrays.pop(user_id, None)
        self._user_vectors.pop(user_id, None)
        self._user_scores.pop(user_id, None)
        self._member_shares.pop(user_id, None)

    def _commit(self, event: Mapping[str, Any], apply: Callable[[], T]) -> T:
        """Journal ``event``, then ``apply`` it to memory (see the class docstring); the result
        of ``apply``. ServeError 503 when the journal cannot be written."""
        if self.journal is None:
            with self._lock:
                return apply()
        finished = threading.Event()
        outcome: list[Any] = []

        def done(error: BaseException | None) -> None:  # on the journal's committer thread
            outcome.extend(self._applied(error, apply))
            finished.set()

        self.journal.submit(event, done)
        finished.wait()
        result, error = outcome
        if error is not None:
            raise error
        return result

    async def _commit_async(self, event: Mapping[str, Any], apply: Callable[[], T]) -> T:
        """:meth:`_commit` for a coroutine: the event loop goes on while the journal syncs."""
        if self.journal is None:
            with self._lock:
                return apply()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def done(error: BaseException | None) -> None:  # on the journal's committer thread
            result, exc = self._applied(error, apply)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, result, exc)

        self.journal.submit(event, done)
        # applied even if the request is cancelled meanwhile: the line is in the journal
        return await future

    def _applied(self, error: BaseException | None, apply: Callable[[], T]
                 ) -> tuple[T | None, BaseException | None]:
        """Run ``apply`` under the lock once its line is on disk; (result, error)."""
        if error is not None:
            assert self.journal is not None
            return None, ServeError(f"the write could not be recorded in the journal: "
                                    f"{self.journal.failure(error)}", 503)
        try:
            with self._lock:
                return apply(), None
        except Exception as exc:  # e.g. ServeError: handed to the caller
            return None, exc

    def _replay(self) -> dict[str, int]:
        """Apply the journal's writes in order; a bad event stops with its line number.

        New items are inserted in batches (each insert copies the item matrix), flushed before
        any feedback that follows them, so positions come out as they did when served.
        """
        assert self.journal is not None
        counts = {"feedback": 0, "items": 0}  # "unfeedback" too, once there is one
        pending: list[tuple[str, dict[str, Any], dict[str, list[str]], np.ndarray,
                            dict[str, np.ndarray]]] = []

        def flush() -> None:
            if pending:
                self._insert_items(*map(list, zip(*pending, strict=True)))
                counts["items"] += len(pending)
                pending.clear()

        for line, event in self.journal.events():
            where = f"{self.journal.path}: line {line}"
            try:
                if event["event"] == "feedback":
                    flush()
                    pos = self.position(str(event["item"]))
                    self._apply_feedback(str(event["user"]), pos, float(event["weight"]))
                    counts["feedback"] += 1
                elif event["event"] == "unfeedback":
                    flush()
                    pos = self.position(str(event["item"]))
                    self._apply_unfeedback(str(event["user"]), pos)
                    counts["unfeedback"] = counts.get("unfeedback", 0) + 1
                elif event["event"] == "item":
                    item_id = str(event["id"])
                    if item_id in self.item_pos or any(item_id == p[0] for p in pending):
                        raise JournalError(f"{where}: item {item_id!r} already exists")
                    vector = np.asarray(event["vector"], np.float32)
                    if vector.shape != (self.vectors.shape[1],):
                        raise JournalError(f"{where}: item {item_id!r} has a vector of shape "
                                           f"{vector.shape}, this model's are "
                                           f"{self.vectors.shape[1]}-d (other artifacts?)")
                    views = {str(m): np.asarray(v, np.float32)
                             for m, v in dict(event.get("views") or {}).items()}
                    pending.append((item_id, dict(event["row"]), _media_columns(event["media"]),
                                    vector, views))
                else:
                    raise JournalError(f"{where}: unknown event {event['event']!r}")
            except JournalError:
                raise
            except ServeError as exc:
                raise JournalError(f"{where}: {exc}") from None
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise JournalError(f"{where}: malformed {event.get('event')!r} event "
                                   f"({type(exc).__name__}: {exc})") from None
        flush()
        return counts

    @contextmanager
    def reserve_item(self, item_id: str) -> Iterator[None]:
        """Hold ``item_id`` for one add, before anything (e.g. an upload) is written for it.

        ServeError 422 for an invalid id, 409 when an item with that id exists or another add
        holds it. The reservation ends with the block (by then the item exists if it was added).
        """
        check_item_id(item_id)
        with self._lock:
            if item_id in self.item_pos:
                raise ServeError(f"an item with id {item_id!r} already exists", 409)
            if item_id in self._pending_items:
                raise ServeError(f"an item with id {item_id!r} is being added by another "
                                 f"request", 409)
            self._pending_items.add(item_id)
        try:
            yield
        finally:
            with self._lock:
                self._pending_items.discard(item_id)

    def add_item(self, item_id: str, fields: Mapping[str, Any],
                 media: Mapping[str, Sequence[str]], *, reserved: bool = False) -> int:
        """Encode, fuse and index a new item whose media files already lie under the catalog
        root (``media``: column -> relative paths, already checked). Returns its position.

        ``reserved``: the caller holds :meth:`reserve_item` for ``item_id`` (e.g. while it
        stored the uploads); otherwise the id is reserved here for the duration of the add.

        The describe stage (media -> text) does not exist yet; once it does, new items should
        also get their generated description here before encoding.
        """
        if not reserved:
            with self.reserve_item(item_id):
                return self.add_item(item_id, fields, media, reserved=True)
        check_item_id(item_id)
        row = self._new_row(item_id, fields, media)
        vector, views = self._encode_item(pd.DataFrame([row]))
        media = _media_columns(media)
        if item_id in self.item_pos:  # reserved, so no other add can insert it meanwhile
            raise ServeError(f"an item with id {item_id!r} already exists", 409)
        event = {"event": "item", "id": item_id, "row": row, "media": media,
                 "vector": [float(x) for x in vector],
                 "views": {m: [float(x) for x in v] for m, v in views.items()}}
        # applied in journal order, so positions come out as the replay will give them
        return self._commit(event, lambda: self._insert_items([item_id], [row], [media],
                                                              [vector], [views]))

    def _insert_items(self, item_ids: list[str], rows: list[dict[str, Any]],
                      media: list[dict[str, list[str]]], vectors: list[np.ndarray],
                      views: list[dict[str, np.ndarray]]) -> int:
        """Append items to the model, index and tables at once; returns the first position.

        ``views``: each item's raw per-modality encoder output (the modalities it has), which
        the served model's content side reads (:meth:`Recommender.score_new_items`)."""
        first = self.n_items
        self.new_item_views = [*self.new_item_views, *views]
        block = np.stack(vectors).astype(np.float32)
        # the model scores and folds in over its own item matrix: it gets the new items too
        self.model.add_items(block)
        self.vectors = np.ascontiguousarray(self.model.item_vectors(), dtype=np.float32)
        self.popularity = np.asarray(self.model.item_popularity(), np.float32)
        self.items = pd.concat([self.items, pd.DataFrame(rows)], ignore_index=True)
        self.item_texts = [*self.item_texts, *(record_text(pd.Series(r), self.text_columns)
                                               for r in rows)]
        self.item_media = [*self.item_media, *media]
        self.media_paths |= {p for m in media for paths in m.values() for p in paths}
        self.index.add(block)
        self.item_ids = [*self.item_ids, *item_ids]
        self.item_pos = {**self.item_pos,
                         **{i: first + n for n, i in enumerate(item_ids)}}
        self._user_vectors = {u: v for u, v in self._user_vectors.items()
                              if u not in self.feedback}
        self._user_scores = {}  # every user's scores gain the new items
        return first

    def _new_row(self, item_id: str, fields: Mapping[str, Any],
                 media: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        allowed = set(self.text_columns) | set(self.attribute_columns)
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ServeError(f"unknown fields {unknown}; this catalog's items have text fields "
                             f"{self.text_columns} and attributes {self.attribute_columns}", 422)
        row: dict[str, Any] = {ID: item_id}
        for col in self.items.columns:
            if col in (ID, IMAGES, AUDIO):
                continue
            value = fields.get(col)
            if col in self.text_columns:
                value = "" if value is None else str(value)
                if len(value) > self.limits.max_text_chars * 10:
                    raise ServeError(f"field {col!r} is too long", 422)
            elif value is not None and pd.api.types.is_numeric_dtype(self.items[col]):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise ServeError(f"attribute {col!r} must be a number, got {value!r}",
                                     422) from None
            elif value is not None:
                value = str(value)  # keep the column's type (the catalog stores strings)
                if len(value) > self.limits.max_text_chars:
                    raise ServeError(f"attribute {col!r} is too long", 422)
            row[col] = value
        row[IMAGES] = list(media.get(IMAGES, []))
        row[AUDIO] = list(media.get(AUDIO, []))
        if not any(row.get(c) for c in self.text_columns) and not row[IMAGES] and not row[AUDIO]:
            raise ServeError("a new item needs at least some text, an image or an audio clip",
                             422)
        return row

    def _encode_item(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The new item's fused content vector, and its raw vector per modality it has."""
        from fuserec.encode import encode_records

        fuser = self.model.fuser
        blocks, raw = {}, {}
        for m in fuser.modalities:
            if m not in self.modalities:  # a precomputed view (no encoder): a zero block
                continue
            view = encode_records(frame, self.catalog_root, m, self.encoder(m), None,
                                  progress=False, text_columns=self.text_columns)
            if view.errors:
                raise ServeError(f"the new item's {m} could not be encoded: {view.errors[0][1]}",
                                 422)
            blocks[m] = fuser.normalize(m, View(view.vectors, view.present))
            if view.present.any():
                raw[m] = np.asarray(view.vectors[0], np.float32)
        return fuser.combine(blocks)[0], raw

