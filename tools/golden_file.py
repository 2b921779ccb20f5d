"""Writing a golden file without ever replacing an existing one silently — shared by every golden recorder.

    from golden_file import temporary_golden, install_golden

    with temporary_golden(out) as temp:
        write_your_golden(temp)
        return install_golden(out, temp, replace=args.replace)   # exit status: 0 kept or written, 1 differs

The new data is written to a temporary file beside OUT (same file system, so the final move is atomic). Without an
existing OUT the file is moved into place. Otherwise a per-dataset diff is printed and OUT is replaced only with
replace=True and only if something but the root attribute `created` changed; without replace=True a difference
returns 1 so a script can tell "the regenerated data differs" from success.
"""

import contextlib
import os
import tempfile

import h5py
import numpy as np


@contextlib.contextmanager
def temporary_golden(out):
    """A temporary .h5 path beside `out`, with normal file permissions; removed on exit unless moved into place."""
    fd, temp = tempfile.mkstemp(prefix=".golden-", suffix=".h5.tmp", dir=os.path.dirname(out))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)  # mkstemp makes the file 0600; give the golden normal permissions
    try:
        yield temp
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def install_golden(out, temp, replace):
    """Move `temp` to `out` unless `out` exists with other data and `replace` is false; return the exit status."""
    if not os.path.exists(out):
        os.replace(temp, out)
        print(f"wrote {out} ({os.path.getsize(out)} bytes)")
        return 0
    print(f"comparing with existing {out}:")
    if not diff_goldens(out, temp):
        print("data identical to the existing golden; kept the existing file")
        return 0
    if replace:
        os.replace(temp, out)
        print(f"REPLACED {out} ({os.path.getsize(out)} bytes)")
        return 0
    print("golden differs; NOT replaced (rerun with --replace to accept the new data)")
    return 1


def read_all(path):
    """(root attributes, {dataset path: (array, attributes)}) of an HDF5 file."""
    datasets = {}
    with h5py.File(path, "r") as f:
        root = dict(f.attrs)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets["/" + name] = (obj[()], dict(obj.attrs))
        f.visititems(visit)
    return root, datasets


def _same(a, b):
    return type(a) is type(b) and np.array_equal(a, b)


def _attr_changes(prefix, old, new, ignore=()):
    changes = []
    for key in sorted(set(old) | set(new)):
        if key not in ignore and not (key in old and key in new and _same(old[key], new[key])):
            changes.append(f"{prefix}@{key}: {old.get(key, '<absent>')!r} -> {new.get(key, '<absent>')!r}")
    return changes


def diff_goldens(old_path, new_path):
    """Print a per-dataset comparison; return True if anything but the root `created` differs."""
    old_root, old_sets = read_all(old_path)
    new_root, new_sets = read_all(new_path)
    differs = False
    print(f"{'dataset':<28} {'shape':<18} {'max abs diff':>13}  identical")
    for name in sorted(set(old_sets) | set(new_sets)):
        if name not in old_sets or name not in new_sets:
            differs = True
            print(f"{name:<28} {'added' if name in new_sets else 'removed'}")
            continue
        (old, old_attrs), (new, new_attrs) = old_sets[name], new_sets[name]
        shape = "x".join(map(str, new.shape))
        if old.shape != new.shape or old.dtype != new.dtype:
            differs = True
            print(f"{name:<28} {shape:<18} {'-':>13}  no (was {old.dtype} {list(old.shape)})")
        else:
            identical = old.tobytes() == new.tobytes()
            max_abs = np.abs(new.astype(np.float64) - old.astype(np.float64)).max() if new.size else 0.0
            differs |= not identical
            print(f"{name:<28} {shape:<18} {max_abs:>13.3g}  {'yes' if identical else 'no'}")
        for change in _attr_changes(name, old_attrs, new_attrs):
            differs = True
            print("  attribute changed:", change)
    changes = _attr_changes("/", old_root, new_root, ignore=("created",))
    for change in changes:
        print("  attribute changed:", change)
    print(f"  /@created: {old_root.get('created')!r} -> {new_root.get('created')!r} (always differs, ignored)")
    return differs or bool(changes)
