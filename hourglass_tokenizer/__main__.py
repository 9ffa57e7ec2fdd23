"""``python -m hourglass_tokenizer {demo,bench,train}``."""
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m hourglass_tokenizer {demo,bench,train} [options]  (--help after a command for its options)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from .bench import main as run
    elif command == "demo":
        from .bench import demo as run
    elif command == "train":
        from .training import main as run
    else:
        print(f"unknown command {command!r}; {usage}", file=sys.stderr)
        return 2
    return run(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
