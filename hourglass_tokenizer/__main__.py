"""``python -m hourglass_tokenizer {demo,bench,train,data}``."""
import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: python -m hourglass_tokenizer {demo,bench,train,data} [options]  (--help after a command for its "
             "options; 'data bvh' converts BVH motion capture for training)")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from .bench.cli import main as run
    elif command == "demo":
        from .bench.cli import demo as run
    elif command == "train":
        from .training.cli import main as run
    elif command == "data":
        data_usage = "usage: python -m hourglass_tokenizer data bvh INPUTS... -o motion.npz [options]"
        if not rest or rest[0] in ("-h", "--help"):
            print(data_usage)
            return 0 if rest else 2
        if rest[0] != "bvh":
            print(f"unknown data command {rest[0]!r}; {data_usage}", file=sys.stderr)
            return 2
        from .data.bvh import main as run
        rest = rest[1:]
    else:
        print(f"unknown command {command!r}; {usage}", file=sys.stderr)
        return 2
    return run(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
