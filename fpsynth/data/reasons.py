"""Why an input, a frame or a row was not kept: the codes of the rejects manifest.

Per-item code raises :class:`Rejected`; the item runner turns it into a rejects row, so a bad file
never stops a run and never disappears without a trace.
"""

from __future__ import annotations

import enum


class Reason(str, enum.Enum):
    # reading
    EMPTY_FILE = "empty_file"  # zero bytes
    UNREADABLE = "unreadable_file"  # the OS refused to read it (permissions, I/O error)
    NOT_AN_IMAGE = "not_an_image"  # OpenCV cannot decode it as an image
    NOT_A_VIDEO = "not_a_video"  # OpenCV cannot open it as a video (or an MP4 missing its index)
    NO_FRAMES = "no_frames"  # opens as a video but no frame decodes
    TRUNCATED = "truncated_video"  # decoding stopped before the frame count in the header
    UNSUPPORTED = "unsupported_file"  # extension that is neither an image nor a video
    PATH_PATTERN = "path_pattern"  # path does not match the source layout / pattern
    # annotations
    MISSING_ANNOTATION = "missing_annotation"  # AFLFP image without its .pts
    BAD_ANNOTATION = "bad_annotation"  # .pts that is not 68 finite points
    # faces and quality
    NO_FACE = "no_face"
    LOW_SCORE = "low_detection_score"
    TWO_FACES = "two_faces"
    FACE_TOO_SMALL = "face_too_small"
    BLURRY = "blurry"
    POSE = "head_turned"
    # manifests
    BAD_SCORE_ROW = "bad_score_row"  # scores CSV row missing or malformed
    UNMATCHED_SCORE = "score_without_input"  # scores CSV row whose subject has no input
    NO_PAIR = "no_pair_partner"  # subject with a single usable image: no identity/style pair


class Rejected(Exception):
    """An input (or frame) that cannot be used; ``detail`` says why in words, without paths."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
