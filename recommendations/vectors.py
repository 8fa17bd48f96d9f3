"""Content vectors: every item of a tenant in one space of fixed dimension, so that items nobody has
touched yet can still be compared. The client's embedding, when it sends one, is projected into that
space (a fixed random projection keeps cosine similarities); otherwise the title, description and
categories are hashed into it (the hashing trick), categories weighing most."""

import hashlib
import re
from functools import lru_cache

import numpy as np

DIMENSION = 128
# Vectors are held as 32-bit floats: a larger value would be infinity there (and NaN in products).
FLOAT32_MAX = float(np.finfo(np.float32).max)
_TOKEN = re.compile(r"[\w]+", re.UNICODE)
_STOPWORDS = frozenset("a an and the of for in on to with by at from or is are this that it its".split())


def _bucket(token: str) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % DIMENSION, (1.0 if (value >> 63) & 1 else -1.0)


# Bounded: each embedding length has its own matrix (up to 4096 x 128 floats), and a client chooses
# the lengths.
@lru_cache(maxsize=8)
def _projection(dimension: int) -> np.ndarray:
    rng = np.random.default_rng(dimension)
    return rng.standard_normal((dimension, DIMENSION)).astype(np.float32) / np.sqrt(DIMENSION)


def _normalized(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def content_vector(
    *, title: str, description: str, categories: list[str], embedding: list[float] | None
) -> np.ndarray:
    if embedding:
        values = np.asarray(embedding, dtype=np.float32)
        return _normalized(values @ _projection(len(values))).astype(np.float32)
    vector = np.zeros(DIMENSION, dtype=np.float32)
    words = [
        word for word in _TOKEN.findall(f"{title} {title} {description}".lower()) if word not in _STOPWORDS
    ]
    for word in words:
        index, sign = _bucket("w:" + word)
        vector[index] += sign
    for category in categories:
        index, sign = _bucket("c:" + category.strip().lower())
        vector[index] += 3.0 * sign
    return _normalized(vector).astype(np.float32)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(raw: bytes | memoryview | None) -> np.ndarray:
    if not raw:
        return np.zeros(DIMENSION, dtype=np.float32)
    return np.frombuffer(bytes(raw), dtype=np.float32)
