"""The order prepare hands jobs to its workers: videos first, the largest file first, the rest as found."""

from __future__ import annotations

from fpsynth.data.runner import _order
from fpsynth.data.sources import Kind


def _job(tmp_path, name, kind, size):
    from fpsynth.data.pseudonyms import Job

    path = tmp_path / name
    path.write_bytes(b"x" * size)
    return Job(input=name, dataset="meei", kind=kind, subject="P0001", expression="e", side=None, files=(str(path),))


def test_videos_first_largest_first_others_in_their_order(tmp_path):
    photos = [_job(tmp_path, f"p{k}.jpg", Kind.PHOTO, 10 * k) for k in (3, 1, 2)]
    videos = [_job(tmp_path, f"v{k}.mp4", Kind.VIDEO, 1000 * k) for k in (1, 3, 2)]
    jobs = [photos[0], videos[0], photos[1], videos[1], photos[2], videos[2]]
    ordered = [j.input for j in sorted(jobs, key=_order)]
    assert ordered == ["v3.mp4", "v2.mp4", "v1.mp4", "p3.jpg", "p1.jpg", "p2.jpg"]


def test_a_video_that_cannot_be_read_still_gets_a_place(tmp_path):
    gone = _job(tmp_path, "gone.mp4", Kind.VIDEO, 5)
    (tmp_path / "gone.mp4").unlink()
    big = _job(tmp_path, "big.mp4", Kind.VIDEO, 50)
    assert [j.input for j in sorted([gone, big], key=_order)] == ["big.mp4", "gone.mp4"]
