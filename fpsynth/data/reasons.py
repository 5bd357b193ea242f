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
    DUPLICATE = (
        "duplicate_file"  # the same file (device, inode) as an input taken already: a link, or one folder given twice
    )
    SPECIAL_FILE = "special_file"  # a FIFO, socket or device named like an input: never opened
    STAGE_FOLDER = (
        "stage_folder"  # a folder of fpsynth outputs (it holds a stage.json) inside an input tree: not walked
    )
    IMAGE_TOO_LARGE = "image_too_large"  # its header states more pixels than prepare.max_image_pixels: not decoded
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
    # frames of a movement (32 wanted from each; every missing share gets a row)
    FRAMES_REJECTED = "frames_rejected"  # share missing because analysed frames of the movement failed a gate
    TOO_FEW_FRAMES = "too_few_frames"  # share missing because the movement holds fewer usable frames
    # movements of a whole-sequence video, photos of a participant
    MOVEMENT_COUNT = "movement_count"  # events found (or photos) differ from prepare.movements: numbered, not named
    BRIEF_MOTION = "brief_motion"  # a burst shorter than prepare.movements.min_movement_s: not a movement
    # manifests
    BAD_SCORE_ROW = "bad_score_row"  # scores CSV / grades XLSX row missing or malformed
    UNMATCHED_SCORE = "score_without_input"  # scores row whose subject has no input
    SCORES_BOTH = "score_in_both_tables"  # a value in the CSV and in the XLSX: the XLSX's is used
    NO_SCORE_ROW = "no_score_row"  # participant of the standard set without a row in its grades XLSX
    NO_PAIR = "no_pair_partner"  # subject with a single usable image: no identity/style pair


class Rejected(Exception):
    """An input (or frame) that cannot be used; ``detail`` says why in words, without paths."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
