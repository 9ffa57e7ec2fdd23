"""``python -m hourglass_tokenizer {demo,bench,train,tune,predict,data}``."""
import importlib
import sys

#: command -> (module, function) run with the remaining arguments.
COMMANDS = {
    "demo": ("hourglass_tokenizer.bench.cli", "demo"),
    "bench": ("hourglass_tokenizer.bench.cli", "main"),
    "train": ("hourglass_tokenizer.training.cli", "main"),
    "tune": ("hourglass_tokenizer.tuning.cli", "main"),
    "predict": ("hourglass_tokenizer.training.predict_cli", "main"),
}
USAGE = ("usage: python -m hourglass_tokenizer {" + ",".join(list(COMMANDS) + ["data"]) + "} [options]  (--help after "
         "a command for its options; 'data bvh' converts BVH motion capture for training)")
DATA_USAGE = "usage: python -m hourglass_tokenizer data bvh INPUTS... -o motion.npz [options]"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "data":
        if not rest or rest[0] in ("-h", "--help"):
            print(DATA_USAGE)
            return 0 if rest else 2
        if rest[0] != "bvh":
            print(f"unknown data command {rest[0]!r}; {DATA_USAGE}", file=sys.stderr)
            return 2
        module, function, rest = "hourglass_tokenizer.data.bvh", "main", rest[1:]
    elif command in COMMANDS:
        module, function = COMMANDS[command]
    else:
        print(f"unknown command {command!r}; {USAGE}", file=sys.stderr)
        return 2
    return getattr(importlib.import_module(module), function)(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
