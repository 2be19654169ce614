#!/usr/bin/env python3
"""spec/support/pty_session.py: runs a program on a pseudo-terminal and
plays a scenario against it, for the REPL specs (spec/support/pty.lua
writes the scenario and reads the result).

    python3 pty_session.py SCENARIO.json  ->  a JSON result on stdout

The scenario: {"argv": [...], "env": {name: value or null}, "timeout": s,
"rows": n, "cols": n, "steps": [...]}, each step one of
    {"send": text}                 types text (control characters too)
    {"expect": text, "timeout": s} waits until the output from the last
                                   match on contains text
    {"screen": text, "timeout": s} waits until the rendered screen has text
    {"line": text, "timeout": s}   waits until the cursor's line is text
    {"sleep": s}
    {"wait": true, "timeout": s}   waits for the program to exit
The result: {"ok": bool, "error": text, "step": n, "status": exit code (or
-signal), "output": all output, "screen": the screen as text, "times":
[when each step ended, in seconds from the start]}. Whatever happens the
program is killed by the end (the overall timeout bounds it).
"""
import codecs
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time


class Screen:
    """Just enough of a terminal to read what the REPL shows: printable
    text, CR, LF, BS, TAB, and the CSI cursor and erase sequences."""

    def __init__(self, cols):
        self.lines = [[]]
        self.row = 0
        self.col = 0
        self.cols = cols
        self.pending = ""

    def _line(self):
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def _put(self, ch):
        if self.col >= self.cols:
            self.row += 1
            self.col = 0
        line = self._line()
        while len(line) < self.col:
            line.append(" ")
        if self.col < len(line):
            line[self.col] = ch
        else:
            line.append(ch)
        self.col += 1

    def _csi(self, params, final):
        nums = [int(p) if p.isdigit() else 0 for p in params.split(";")]
        n = max(nums[0], 1) if nums else 1
        if final == "A":
            self.row = max(self.row - n, 0)
        elif final == "B":
            self.row += n
        elif final == "C":
            self.col += n
        elif final == "D":
            self.col = max(self.col - n, 0)
        elif final == "G":
            self.col = n - 1
        elif final == "K":
            line = self._line()
            mode = nums[0] if nums else 0
            if mode == 0:
                del line[self.col:]
            elif mode == 1:
                for i in range(min(self.col + 1, len(line))):
                    line[i] = " "
            else:
                line.clear()
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode == 0:
                del self._line()[self.col:]
                del self.lines[self.row + 1:]
            elif mode == 2:
                self.lines = [[] for _ in self.lines]
        elif final in "Hf":
            r = nums[0] if nums and nums[0] else 1
            c = nums[1] if len(nums) > 1 and nums[1] else 1
            self.row, self.col = r - 1, c - 1
        elif final == "P":  # delete characters
            line = self._line()
            del line[self.col:self.col + n]
        elif final == "@":  # insert blanks
            line = self._line()
            for _ in range(n):
                line.insert(self.col, " ")

    def feed(self, text):
        text = self.pending + text
        self.pending = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                m = re.match(r"\x1b\[([0-9;?]*)([@-~])", text[i:])
                if m:
                    self._csi(m.group(1).lstrip("?"), m.group(2))
                    i += m.end()
                    continue
                if re.fullmatch(r"\x1b(\[[0-9;?]*)?", text[i:]):
                    self.pending = text[i:]  # the rest comes next read
                    return
                i += 2  # ESC and one character: ignored
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
            elif ch == "\b":
                self.col = max(self.col - 1, 0)
            elif ch == "\t":
                self.col = (self.col // 8 + 1) * 8
            elif ch >= " " or ord(ch) > 127:
                self._put(ch)
            i += 1
        self._line()

    def text(self):
        return "\n".join("".join(l).rstrip() for l in self.lines)

    def cursor_line(self):
        return "".join(self._line())


def main():
    with open(sys.argv[1]) as f:
        sc = json.load(f)
    rows, cols = sc.get("rows", 24), sc.get("cols", 200)
    env = dict(os.environ)
    env["TERM"] = "vt100"
    for k, v in (sc.get("env") or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    deadline = time.monotonic() + sc.get("timeout", 30)
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvpe(sc["argv"][0], sc["argv"], env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    raw = bytearray()
    screen = Screen(cols)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    result = {"ok": True, "error": "", "step": 0, "status": None, "times": []}
    mark = 0  # where the next "expect" starts looking

    def pump(wait):
        """Reads what is there (waiting up to wait seconds); False at EOF."""
        r, _, _ = select.select([fd], [], [], wait)
        if not r:
            return True
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        raw.extend(data)
        screen.feed(decoder.decode(data))
        return True

    def reap(block):
        if result["status"] is not None:
            return True
        p, st = os.waitpid(pid, 0 if block else os.WNOHANG)
        if p == 0:
            return False
        if os.WIFEXITED(st):
            result["status"] = os.WEXITSTATUS(st)
        else:
            result["status"] = -os.WTERMSIG(st)
        return True

    def wait_for(cond, timeout):
        end = min(time.monotonic() + timeout, deadline)
        alive = True
        while True:
            if cond():
                return True
            now = time.monotonic()
            if now >= end:
                return False
            if alive:
                alive = pump(end - now)
            else:
                if reap(False):
                    return cond()
                time.sleep(0.01)

    try:
        for n, step in enumerate(sc["steps"], 1):
            result["step"] = n
            timeout = step.get("timeout", 10)
            if "send" in step:
                os.write(fd, step["send"].encode())
            elif "sleep" in step:
                wait_for(lambda: False, step["sleep"])
            elif "expect" in step:
                want = step["expect"].encode()
                found = {}

                def seen():
                    i = raw.find(want, mark)
                    if i >= 0:
                        found["end"] = i + len(want)
                    return i >= 0
                if not wait_for(seen, timeout):
                    raise RuntimeError("expected %r" % step["expect"])
                mark = found["end"]
            elif "screen" in step:
                if not wait_for(lambda: step["screen"] in screen.text(),
                                timeout):
                    raise RuntimeError("screen lacks %r" % step["screen"])
            elif "line" in step:
                if not wait_for(lambda: screen.cursor_line() == step["line"],
                                timeout):
                    raise RuntimeError("cursor line is %r, not %r" %
                                       (screen.cursor_line(), step["line"]))
            elif "wait" in step:
                end = min(time.monotonic() + timeout, deadline)
                while not reap(False):
                    if time.monotonic() >= end:
                        raise RuntimeError("the program did not exit")
                    pump(0.05)
                while pump(0.05):
                    pass
            result["times"].append(time.monotonic() - start)
    except Exception as e:  # a failed step: report it with the output
        result["ok"] = False
        result["error"] = str(e)
    finally:
        if not reap(False):
            os.kill(pid, signal.SIGKILL)
            reap(True)
        os.close(fd)
    result["output"] = raw.decode("utf-8", "replace")
    result["screen"] = screen.text()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
