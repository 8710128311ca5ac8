"""Lock helper run inside the guest (python3-minimal).

  lockholder.py hold-fcntl FILE SECONDS   take a POSIX write lock (F_SETLKW), print LOCKED, hold
  lockholder.py try-fcntl FILE            try a POSIX write lock (F_SETLK): print GOT or DENIED
  lockholder.py writer FILE COUNT DELAY [RELEASE]
                                          open, lock, then append COUNT numbered lines with fsync,
                                          DELAY seconds apart, holding the lock; then wait for the
                                          file RELEASE to exist (if given) before unlocking; any
                                          error exits 1
"""
import errno
import fcntl
import os
import sys
import time


def hold(path, seconds):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print("LOCKED", flush=True)
    time.sleep(seconds)
    fcntl.lockf(fd, fcntl.LOCK_UN)
    os.close(fd)


def try_lock(path):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            print("DENIED", flush=True)
            return 0
        raise
    print("GOT", flush=True)
    fcntl.lockf(fd, fcntl.LOCK_UN)
    return 0


def writer(path, count, delay, release=None):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print("LOCKED", flush=True)
    for i in range(count):
        os.write(fd, f"line {i}\n".encode())
        os.fsync(fd)
        print(f"wrote {i} at {time.strftime('%H:%M:%S')}", flush=True)
        time.sleep(delay)
    print("WRITES DONE", flush=True)
    deadline = time.monotonic() + 300
    while release and not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Still ours after any server restart: unlocking must work too.
    fcntl.lockf(fd, fcntl.LOCK_UN)
    os.close(fd)
    print("WRITER DONE", flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "hold-fcntl":
        hold(sys.argv[2], float(sys.argv[3]))
    elif cmd == "try-fcntl":
        sys.exit(try_lock(sys.argv[2]))
    elif cmd == "writer":
        writer(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        sys.exit(f"unknown command {cmd}")
