"""Reproductions of faults in the write paths, each shown fixed: uploads that overwrote other
items' media (and were written before the id was checked), CLI tracebacks for unusable catalogs
and refused pickles, and a journal that fsynced every write alone under the state's lock."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

import fuserec.serve.journal as journal_module
from fuserec.cli import app as cli
from fuserec.data.loaders import load_catalog
from fuserec.data.validate import CatalogError
from fuserec.serve import create_app
from fuserec.serve.journal import Journal
from fuserec.serve.state import ServingState
from serve_helpers import build_fake_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return build_fake_artifacts(tmp_path_factory.mktemp("writes") / "run")


@pytest.fixture()
def client(artifacts):
    with TestClient(create_app(artifacts, token="")) as c:
        yield c


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, "PNG")
    return buf.getvalue()


RED, GREEN, BLUE, GREY = png((220, 20, 20)), png((20, 200, 20)), png((20, 20, 220)), \
    png((128, 128, 128))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``root``."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in root.rglob("*")}


def add(client, item_id: str, image: bytes, name: str = "photo.png", **fields):
    fields = fields or {"title": f"item {item_id}"}
    return client.post("/items", data={"id": item_id, "fields": json.dumps(fields)},
                       files=[("images", (name, image))])


def image_of(client, item_id: str) -> bytes:
    res = client.get(f"/items/{item_id}")
    assert res.status_code == 200, res.text
    media = client.get(res.json()["images"][0])
    assert media.status_code == 200, media.text
    return media.content


# -- 1. uploads never overwrite another item's media; refused requests write nothing ------------
def test_ids_that_mapped_to_one_folder_keep_their_own_images_across_a_restart(artifacts,
                                                                              tmp_path):
    journal = tmp_path / "journal.jsonl"
    want = {"x:1": RED, "x@1": GREEN, "x_1": BLUE}  # all three used to land in uploads/x_1
    with TestClient(create_app(artifacts, token="", journal=journal)) as c:
        for item_id, image in want.items():
            res = add(c, item_id, image)
            assert res.status_code == 201, res.text
        for item_id, image in want.items():
            assert image_of(c, item_id) == image
        paths = {c.app.state.serving.item_media[c.app.state.serving.item_pos[i]]["images"][0]
                 for i in want}
        assert len(paths) == 3
    with TestClient(create_app(artifacts, token="", journal=journal)) as again:  # replay
        assert again.app.state.serving.replayed["items"] == 3
        for item_id, image in want.items():
            assert image_of(again, item_id) == image


@pytest.mark.parametrize("bad_id", ["x 1", "a/b", "..", "../escape", "x_1\n", "-x"])
def test_a_refused_id_writes_nothing_anywhere(client, bad_id):
    root = client.app.state.serving.catalog_root
    assert add(client, "x_1", BLUE).status_code == 201
    before = snapshot(root)
    res = add(client, bad_id, RED)
    assert res.status_code == 422, res.text
    assert "item ids" in res.json()["error"]
    assert snapshot(root) == before  # no file, no folder, nothing replaced
    assert not (root / "images_0.png").exists()  # what id=".." used to leave in the root
    assert image_of(client, "x_1") == BLUE  # "x 1" and "a/b" used to replace this image


def test_an_existing_id_is_409_before_anything_is_written(client):
    root = client.app.state.serving.catalog_root
    assert add(client, "taken", GREEN).status_code == 201
    before = snapshot(root)
    res = add(client, "taken", RED)
    assert res.status_code == 409 and "already exists" in res.json()["error"]
    assert snapshot(root) == before
    assert image_of(client, "taken") == GREEN


def test_a_failed_add_removes_only_its_own_files_and_frees_the_id(client):
    state = client.app.state.serving
    root = state.catalog_root
    before = snapshot(root)
    res = client.post("/items", data={"id": "half", "fields": '{"title": "half"}'},
                      files=[("images", ("a.png", RED)),
                             ("images", ("b.jpg", b"\xff\xd8\xff not a jpeg"))])
    assert res.status_code == 422 and "rejected" in res.json()["error"]
    assert snapshot(root) == before  # the first, valid file is gone again, and its folder
    assert "half" not in state.item_pos and not state._pending_items
    assert add(client, "half", GREY).status_code == 201  # the id is free again
    assert image_of(client, "half") == GREY


def test_two_concurrent_adds_of_one_id_one_wins_with_its_files_intact(client, monkeypatch):
    state = client.app.state.serving
    uploads = state.catalog_root / "uploads"
    files_before = {p for p in uploads.rglob("*") if p.is_file()} if uploads.exists() else set()
    real = state._encode_item

    def slow_encode(frame):  # widen the window in which both requests are in flight
        time.sleep(0.3)
        return real(frame)

    monkeypatch.setattr(state, "_encode_item", slow_encode)
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def post(image: bytes) -> None:
        start.wait()
        results[image] = add(client, "same", image)

    threads = [threading.Thread(target=post, args=(img,)) for img in (RED, GREEN)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(r.status_code for r in results.values())
    assert codes == [201, 409], [r.text for r in results.values()]
    winner = next(img for img, r in results.items() if r.status_code == 201)
    loser = next(r for r in results.values() if r.status_code == 409)
    assert "same" in loser.json()["error"]
    assert image_of(client, "same") == winner  # the loser deleted nothing of the winner's
    new_files = {p for p in uploads.rglob("*") if p.is_file()} - files_before
    assert [p.read_bytes() for p in new_files] == [winner]  # and left nothing of its own


# -- 2. unusable catalogs and refused pickles are one-line CLI errors -----------------------------
def _catalog(root: Path, items: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "items.csv").write_text(items, encoding="utf-8")
    (root / "interactions.csv").write_text("user_id,item_id\nu1,a\nu2,b\n", encoding="utf-8")
    return root


def _assert_one_line_error(result, *names: str) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an exception with a traceback
    assert "Traceback" not in result.output
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error:"), result.output
    for name in names:
        assert name in line
    return line


@pytest.mark.parametrize("command", ["validate", "encode"])
@pytest.mark.parametrize("items, why", [("", "no records"), ("id,title\n", "no records"),
                                        ("name,title\na,b\nc,d\n", "no 'id' column")])
def test_cli_unusable_items_file_is_one_line_exit_2(tmp_path, command, items, why):
    root = _catalog(tmp_path / "cat", items)
    args = [command, str(root), "--no-progress"]
    if command == "encode":
        args += ["--cache", str(tmp_path / "cache")]
    result = CliRunner().invoke(cli, args)
    line = _assert_one_line_error(result, str(root / "items.csv"), why)
    assert "unknown item" not in line  # the empty file used to pass with every interaction
    assert not (tmp_path / "cache").exists()  # refused before encoding anything


def test_cli_validate_all_items_rejected_shows_the_report_then_one_error(tmp_path):
    root = _catalog(tmp_path / "cat", "id,title\n,no id here\n")
    result = CliRunner().invoke(cli, ["validate", str(root), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "missing or empty id" in result.output  # the report
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and str(root / "items.csv") in last
    assert "no valid items" in last


def test_load_catalog_raises_catalog_error_naming_the_file(tmp_path):
    root = _catalog(tmp_path / "cat", "")
    with pytest.raises(CatalogError, match=r"items\.csv: the items table has no records"):
        load_catalog(root, progress=False)
    assert issubclass(CatalogError, ValueError)


class _Harmless:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cli_evaluate_refused_pickle_is_one_line_exit_2(tmp_path):
    data = tmp_path / "tiktok"
    data.mkdir()
    for name in ("trnMat.pkl", "tstMat.pkl"):
        (data / name).write_bytes(pickle.dumps(_Harmless()))
    result = CliRunner().invoke(cli, ["evaluate", "--dataset", "tiktok", "--data-dir", str(data),
                                      "--no-progress"])
    line = _assert_one_line_error(result, str(data / "trnMat.pkl"), "refusing")
    assert "this must never run" not in line


def test_cli_evaluate_missing_dataset_file_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "--dataset", "tiktok", "--data-dir",
                                      str(tmp_path), "--no-progress"])
    _assert_one_line_error(result, str(tmp_path / "trnMat.pkl"), "missing")


# -- 3. group commit: many writers share an fsync, each acknowledged only once on disk -----------
def _event(writer: int, seq: int) -> dict:
    return {"event": "feedback", "user": f"w{writer}", "item": f"i{seq}", "weight": 1.0}


def test_group_commit_20_writers_replay_in_order_with_few_fsyncs(tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append({"event": "feedback", "user": "first", "item": "i", "weight": 1.0})
    real_fsync = os.fsync
    fsyncs: list[int] = []
    synced = [0]  # bytes of the file known to be on disk

    def slow_fsync(fd: int) -> None:  # a disk that takes 2 ms per fsync
        time.sleep(0.002)
        real_fsync(fd)
        fsyncs.append(fd)
        synced[0] = max(synced[0], os.fstat(fd).st_size)

    monkeypatch.setattr(journal_module.os, "fsync", slow_fsync)
    start = threading.Barrier(20)
    acked: dict[tuple[int, int], int] = {}  # (writer, seq) -> bytes on disk when acknowledged
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        start.wait()
        for seq in range(50):
            try:
                journal.append(_event(w, seq))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            acked[(w, seq)] = synced[0]

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    events = [e for _, e in Journal(path).events()][1:]
    assert len(events) == 1000
    order = [(int(e["user"][1:]), int(e["item"][1:])) for e in events]
    assert sorted(order) == sorted(acked)  # every acknowledged write, once
    for w in range(20):  # each writer's events in the order it wrote them
        assert [s for u, s in order if u == w] == list(range(50))
    # each write was on disk when append returned: its line ends within the synced bytes
    data = path.read_bytes()
    ends, pos = {}, 0
    for line in data.split(b"\n")[:-1]:
        pos += len(line) + 1
        e = json.loads(line)
        if e["user"] != "first":
            ends[(int(e["user"][1:]), int(e["item"][1:]))] = pos
    assert all(ends[key] <= acked[key] for key in acked)
    assert len(fsyncs) < 250, len(fsyncs)  # one fsync per write used to be 1000


def test_a_failed_fsync_fails_only_its_group(tmp_path, monkeypatch):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(_event(0, 0))
    real_fsync = os.fsync
    calls = [0]
    first_in, release_first = threading.Event(), threading.Event()

    def fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == 1:  # group 1 (writer A) is flushing: hold it while B, C, D queue up
            first_in.set()
            assert release_first.wait(10)
        elif calls[0] == 2:  # group 2 (B, C, D): the disk fails
            raise OSError(errno.EIO, "simulated I/O error")
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", fsync)
    outcome: dict[str, BaseException | None] = {}

    def write(name: str, w: int) -> None:
        try:
            journal.append(_event(w, 1))
            outcome[name] = None
        except BaseException as exc:
            outcome[name] = exc

    a = threading.Thread(target=write, args=("A", 1))
    a.start()
    assert first_in.wait(10)
    group = [threading.Thread(target=write, args=(n, w)) for n, w in (("B", 2), ("C", 3),
                                                                         ("D", 4))]
    for t in group:
        t.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # all three wait in the next group
        with journal._cond:
            if journal._open is not None and len(journal._open.lines) == 3:
                break
        time.sleep(0.005)
    release_first.set()
    for t in (a, *group):
        t.join(10)
    assert outcome["A"] is None
    for name in "BCD":
        assert isinstance(outcome[name], OSError) and "simulated I/O error" in str(outcome[name])
    write("E", 5)  # the journal goes on after a failed group
    assert outcome["E"] is None
    users = [e["user"] for _, e in Journal(path).events()]
    assert users == ["w0", "w1", "w5"]  # the failed group was cut off: never replayed


def test_group_commit_can_be_switched_off_for_a_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv(journal_module.GROUP_COMMIT_ENV, "0")
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    assert journal.group_commit is False
    journal.append(_event(0, 0))
    real_fsync = os.fsync
    fsyncs = [0]

    def counting(fd: int) -> None:
        time.sleep(0.001)
        real_fsync(fd)
        fsyncs[0] += 1

    monkeypatch.setattr(journal_module.os, "fsync", counting)
    threads = [threading.Thread(target=lambda w=w: [journal.append(_event(w, s))
                                                    for s in range(10)]) for w in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert fsyncs[0] == 50  # one per write
    assert len(list(Journal(path).events())) == 51


def test_feedback_through_the_state_shares_fsyncs_and_keeps_each_users_order(artifacts,
                                                                             tmp_path,
                                                                             monkeypatch):
    journal = tmp_path / "journal.jsonl"
    state = ServingState.from_folder(artifacts, journal=journal)
    state.add_feedback("warm", state.item_ids[0])  # creates the file
    real_fsync = os.fsync
    fsyncs = [0]
    lock_free_during_fsync: list[bool] = []

    def slow_fsync(fd: int) -> None:
        # the state's lock is not held while the journal syncs (reads and other writes go on)
        free = state._lock.acquire(blocking=False)
        if free:
            state._lock.release()
        lock_free_during_fsync.append(free)
        time.sleep(0.002)
        real_fsync(fd)
        fsyncs[0] += 1

    monkeypatch.setattr(journal_module.os, "fsync", slow_fsync)
    start = threading.Barrier(20)
    counts: dict[tuple[str, str], int] = {}

    def writer(n: int) -> None:  # ten users, two threads each, 20 distinct items per user
        user, half = f"fresh{n // 2}", n % 2
        start.wait()
        for j in range(10):
            item = state.item_ids[half * 10 + j]
            counts[(user, item)] = state.add_feedback(user, item)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(counts) == 200
    assert fsyncs[0] < 100, fsyncs[0]
    assert lock_free_during_fsync and all(lock_free_during_fsync)
    # per user, the journal order is the order memory saw: the n-th line of a user is the write
    # that was told "you are the n-th feedback"
    seen: dict[str, int] = {}
    for _, e in Journal(journal).events():
        if e["user"].startswith("fresh"):
            seen[e["user"]] = seen.get(e["user"], 0) + 1
            assert counts[(e["user"], e["item"])] == seen[e["user"]]
    monkeypatch.undo()
    again = ServingState.from_folder(artifacts, journal=journal)
    assert again.replayed["feedback"] == 201
    assert again.feedback == state.feedback
