"""Print the project slug the default answers produce (used by `make demo`)."""

from scripts.bakery import default_answers

if __name__ == "__main__":
    print(default_answers()["project_slug"])
