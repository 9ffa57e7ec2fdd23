"""Files users can trust: nothing is unpickled beyond plain data, no output is half-written, and
no earlier result is replaced without being asked.

* :func:`load_torch_file` reads checkpoints with ``torch.load(weights_only=True)``: tensors, numbers,
  strings, containers and numpy arrays/scalars (upstream training scripts store a numpy random
  state or a numpy ``min_loss`` next to the weights), never code. ``trusted=True`` is an explicit
  opt-in for legacy files that pickle other objects (it runs whatever the file contains).
* :func:`load_npz` reads ``.npz`` archives whose entries are pickled objects (VideoPose3D's
  Human3.6M files store dicts that way) with :class:`RestrictedUnpickler`, which admits the same
  numpy arrays, dtypes and scalars besides Python's plain types.
* :func:`atomic_write` writes every output to a temporary file in the target's folder and renames it
  over the target only once complete; on failure the temporary file is removed and the previous file
  stays as it was.
* :func:`check_output_file` / :func:`check_output_dir` check an output path before any long work:
  an existing result is refused unless ``overwrite`` is given, and an unwritable place fails at once.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import os
import pickle
import secrets
import zipfile
from typing import Any, Dict, Iterator, Optional, Union

import numpy as np

__all__ = ["UnsafeFileError", "FileReadError", "OutputPathError", "RestrictedUnpickler", "load_torch_file",
           "load_npz", "atomic_write", "check_output_file", "check_output_dir"]

PathLike = Union[str, "os.PathLike[str]"]


class FileReadError(ValueError):
    """A file the user named is missing, empty, truncated or not in the expected format."""


class UnsafeFileError(FileReadError):
    """A file would need to run code (unpickle arbitrary objects) to load; it was not loaded."""


class OutputPathError(ValueError):
    """An output path that would replace an earlier result, or where nothing can be written."""


# -- reading ---------------------------------------------------------------------------------------

#: The only globals a pickle may name besides plain Python types: what numpy needs to rebuild arrays,
#: dtypes and scalars (``numpy.core`` is numpy 1's name of ``numpy._core``), and the bytes helper of
#: protocol-2 pickles. None of them can call anything the file chooses.
NUMPY_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


def _numpy_global(module: str, name: str) -> Any:
    """``module.name``, under whichever of ``numpy._core`` (numpy 2) / ``numpy.core`` (numpy 1) exists."""
    spellings = [module.replace("numpy.core", "numpy._core", 1), module.replace("numpy._core", "numpy.core", 1)]
    for candidate in dict.fromkeys(spellings):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafeFileError(f"the pickle refers to {module}.{name}, which this numpy does not have")


def _torch_safe_globals() -> list:
    """:data:`NUMPY_PICKLE_GLOBALS` in the form ``torch.serialization.safe_globals`` takes, plus the
    dtype classes that torch's unpickler must be told it may restore (``numpy.dtypes.Float64DType``)."""
    named = [(_numpy_global(module, name), f"{module}.{name}") for module, name in sorted(NUMPY_PICKLE_GLOBALS)
             if module != "_codecs"]
    return named + sorted({type(np.dtype(code)) for code in np.typecodes["All"]}, key=lambda t: t.__name__)


def _require_regular_file(path: PathLike, what: str) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise FileReadError(f"{what} {path!r} is a directory, not a file")
    if not os.path.exists(path):
        raise FileReadError(f"{what} {path!r} does not exist")
    if os.path.getsize(path) == 0:
        raise FileReadError(f"{what} {path!r} is empty")
    return path


def load_torch_file(path: PathLike, map_location: Any = "cpu", *, trusted: bool = False,
                    what: str = "checkpoint") -> Any:
    """``torch.load`` that cannot run code: only tensors, numbers, strings, containers and numpy
    arrays/scalars load.

    Args:
        trusted: unpickle anything (``weights_only=False``). Only for files from a source you trust:
            a pickle can run arbitrary code when it is loaded.

    Raises:
        UnsafeFileError: the file pickles other objects (it names the first one).
        FileReadError: the file is missing, a directory, empty, truncated or not a torch file.
    """
    import torch

    path = _require_regular_file(path, what)
    try:
        if trusted:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(_torch_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = next((line.strip().rstrip(".") for line in str(exc).splitlines() if "GLOBAL" in line), None)
        if trusted or blocked is None:
            raise FileReadError(f"{what} {path!r} is not a readable torch file: truncated or another format "
                                f"({_reason(exc)})") from None
        raise UnsafeFileError(
            f"{what} {path!r} holds more than tensors and plain data, so loading it could run code; refused "
            f"({blocked}). If you trust its source, load it with trusted=True (--trust-checkpoint)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, IndexError, TypeError,
            AttributeError, ImportError) as exc:  # what a truncated or foreign file makes the unpickler raise
        raise FileReadError(f"{what} {path!r} is not a readable torch file: truncated or another format "
                            f"({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    """The informative line of an unpickling error (torch prefixes its own advice about weights_only)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation",
                                                             "Please file an issue"))]
    return (useful or lines or [type(exc).__name__])[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only: dicts, lists, tuples, strings, numbers, bytes,
    ``numpy.ndarray``, ``numpy.dtype`` and numpy scalars. Anything else raises :class:`UnsafeFileError`."""

    _ALLOWED = NUMPY_PICKLE_GLOBALS | {("collections", "OrderedDict")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise UnsafeFileError(f"the pickle refers to {module}.{name}, which is not plain data")
        if module.startswith("numpy"):  # numpy 1's pickles name the module that numpy 2 renamed
            return _numpy_global(module, name)
        return super().find_class(module, name)


def _read_npy(fp: io.BufferedIOBase, where: str) -> np.ndarray:
    version = np.lib.format.read_magic(fp)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(fp)
    if not dtype.hasobject:
        count = int(np.prod(shape)) if shape else 1
        data = fp.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise FileReadError(f"{where}: truncated array data")
        array = np.frombuffer(data, dtype=dtype, count=count)
        return (array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)).copy()
    try:
        value = RestrictedUnpickler(fp).load()
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{where}: refused to load a pickled object that could run code ({exc})") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as exc:
        raise FileReadError(f"{where}: unreadable pickled data ({_first_line(exc)})") from None
    if not isinstance(value, np.ndarray):
        raise UnsafeFileError(f"{where}: expected a pickled numpy array, found {type(value).__name__}")
    return value


def load_npz(path: PathLike) -> Dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive; object arrays are read with :class:`RestrictedUnpickler`.

    Raises:
        UnsafeFileError: an entry pickles something other than plain data and numpy arrays.
        FileReadError: the file is missing, empty, or not a readable ``.npz``.
    """
    path = _require_regular_file(path, "file")
    if not zipfile.is_zipfile(path):
        raise FileReadError(f"{path}: not an .npz archive")
    arrays: Dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with archive.open(member) as fp:
                    arrays[key] = _read_npy(fp, f"{path} [{key}]")
    except FileReadError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise FileReadError(f"{path}: not a readable .npz archive ({_first_line(exc)})") from None
    return arrays


# -- writing ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; once the block ends without error it replaces ``path``.

    The temporary name ends with ``path``'s own extension, so writers that choose a format by
    extension (``savefig``) or append one (``np.savez``) behave as for ``path``. When the block (or the
    rename) fails, the temporary file is removed and ``path`` keeps its previous content. The data
    reach the disk before the rename, so a crash right after it cannot leave an empty file; the new
    file gets the permissions of the one it replaces (or the usual ones for a new file).

    Raises:
        OutputPathError: ``path`` is a directory (nothing is created).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputPathError(f"{path!r} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _create_beside(path)
    try:
        yield tmp
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        with open(tmp, "r+b") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _create_beside(path: str) -> str:
    """Create an empty, new file named ``.NAME.<random>.tmp.EXT`` in ``path``'s folder, with the
    permissions a new file gets there (the umask applies, unlike ``mkstemp``'s private files)."""
    folder, base = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp{os.path.splitext(base)[1]}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise OutputPathError(f"cannot create a temporary file beside {path!r}")


def _writable_folder(folder: str) -> Optional[str]:
    """``None`` when files can be created in ``folder`` (made if missing); else why not."""
    probe = os.path.abspath(folder or ".")
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{probe!r} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe!r} is not writable"
    return None


def check_output_file(path: PathLike, *, overwrite: bool = False, flag: str = "--overwrite") -> str:
    """Check, before any work, that ``path`` can be written and holds no earlier result.

    Raises:
        OutputPathError: ``path`` is a directory, exists (without ``overwrite``), or its folder
            cannot be written; the message names ``flag``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputPathError(f"{path!r} is a directory; give a file name")
    if os.path.exists(path) and not overwrite:
        raise OutputPathError(f"{path!r} already exists; choose another name or pass {flag} to replace it")
    problem = _writable_folder(os.path.dirname(os.path.abspath(path)))
    if problem:
        raise OutputPathError(f"cannot write {path!r}: {problem}")
    return path


def check_output_dir(path: PathLike, *, results: tuple = (), overwrite: bool = False,
                     flag: str = "--overwrite") -> str:
    """Check, before any work, that files can be written into the folder ``path`` and that it holds
    none of ``results`` (file names of an earlier run) unless ``overwrite``.

    Raises:
        OutputPathError: ``path`` is a file, is not writable, or holds an earlier result.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"{path!r} is a file, not a folder")
    problem = _writable_folder(path)
    if problem:
        raise OutputPathError(f"cannot write into {path!r}: {problem}")
    found = [name for name in results if os.path.exists(os.path.join(path, name))]
    if found and not overwrite:
        raise OutputPathError(f"{path!r} already holds {', '.join(found)} from an earlier run; choose another "
                              f"folder or pass {flag} to replace them")
    return path
