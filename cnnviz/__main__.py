"""``python -m cnnviz`` (and so ``torchrun -m cnnviz train ...``)."""

from cnnviz.cli.main import main

if __name__ == "__main__":
    main()
