"""islr.fileio: a final name only ever holds a complete file, whatever fails and when."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from islr import fileio
from islr.errors import WriteError
from islr.fileio import atomic_path, atomic_write_bytes, atomic_write_text


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_success_replaces_the_target_in_one_rename(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", recording_replace)
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        # Until the block ends the old file is still there, whole.
        assert target.read_text() == "old" and tmp.parent == target.parent and tmp != target
    assert target.read_text() == "new"
    assert renames == [(tmp.name, "metrics.json")]
    assert _leftovers(tmp_path, {"metrics.json"}) == []


def test_helpers_write_new_files_and_text_as_utf8(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "b.txt", "Gebärde ✋")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "Gebärde ✋".encode()
    assert _leftovers(tmp_path, {"a.bin", "b.txt"}) == []


def test_an_error_mid_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("previous report")
    with pytest.raises(RuntimeError, match="renderer crashed"), atomic_path(target) as tmp:
        tmp.write_text("<html>half")
        raise RuntimeError("renderer crashed")
    assert target.read_text() == "previous report"
    assert _leftovers(tmp_path, {"report.html"}) == []


@pytest.mark.parametrize(("code", "reason"), [(errno.ENOSPC, "no space left on device"),
                                              (errno.EDQUOT, "disk quota exceeded"),
                                              (errno.EACCES, "Permission denied")])
def test_os_errors_become_a_write_error_naming_the_target(tmp_path, code, reason):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"good model")
    with pytest.raises(WriteError) as info, atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(b"half a mod")
        raise OSError(code, os.strerror(code))
    error = info.value
    assert error.path == str(target) and error.reason == reason
    assert str(error) == f"{target}: could not write ({reason}); the previous file, if any, is unchanged"
    assert isinstance(error.__cause__, OSError) and error.__cause__.errno == code
    assert target.read_bytes() == b"good model"
    assert _leftovers(tmp_path, {"model.onnx"}) == []


def test_enospc_while_writing_bytes_partway(tmp_path, monkeypatch):
    """The write itself fails after some bytes landed (what a full disk does)."""
    target = tmp_path / "data.bin"
    target.write_bytes(b"A" * 100)
    real_write_bytes = Path.write_bytes

    def fills_the_disk(self, data):
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", fills_the_disk)
    with pytest.raises(WriteError, match=r"data\.bin: could not write \(no space left on device\)"):
        atomic_write_bytes(target, b"B" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"A" * 100
    assert _leftovers(tmp_path, {"data.bin"}) == []


def test_a_failed_fsync_also_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "meta.json"
    target.write_text("{}")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(WriteError, match="no space left on device"):
        atomic_write_text(target, '{"new": 1}')
    assert target.read_text() == "{}"
    assert _leftovers(tmp_path, {"meta.json"}) == []


def test_no_previous_file_means_no_file_after_a_failure(tmp_path):
    target = tmp_path / "new.csv"
    with pytest.raises(WriteError), atomic_path(target) as tmp:
        tmp.write_text("a,b\n")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_folder_is_removed_on_failure(tmp_path):
    target = tmp_path / "saved_model"
    with pytest.raises(WriteError), atomic_path(target) as tmp:
        (tmp / "variables").mkdir(parents=True)
        (tmp / "variables" / "data").write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_real_kernel_write_failure_partway(tmp_path):
    """A genuine short write: RLIMIT_FSIZE makes the kernel refuse bytes past 64 KiB (EFBIG), the
    same path through the code as a full disk, without needing to mount a small file system."""
    target = tmp_path / "store.bin"
    target.write_bytes(b"previous" * 10)
    script = textwrap.dedent(f"""
        import resource, signal
        from islr.errors import WriteError
        from islr.fileio import atomic_write_bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            atomic_write_bytes({str(target)!r}, b"x" * 1_000_000)
        except WriteError as exc:
            print("WriteError", exc.path, exc.reason, sep="|")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"WriteError|{target}|{os.strerror(errno.EFBIG)}"
    assert target.read_bytes() == b"previous" * 10
    assert _leftovers(tmp_path, {"store.bin"}) == []
