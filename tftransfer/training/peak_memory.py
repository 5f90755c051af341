"""Peak resident memory of this process since a mark, for run summaries.

`getrusage().ru_maxrss` is the peak over the whole process, so the second of
several runs in one process (`tftransfer compare`) would report the first's
peak too. Linux can reset the peak (`/proc/self/clear_refs`, value 5) and
report it since (`VmHWM` in `/proc/self/status`); elsewhere the process peak
is what there is.

Example:

>>> reset()
>>> current_peak_mb() > 0
True
"""

import resource


def reset():
    """Starts a new peak (Linux); a no-op where the kernel cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def current_peak_mb():
    """Peak resident memory in MB since `reset` (Linux), else since the process started."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
