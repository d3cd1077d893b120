from stepwell import dsl


@dsl.component
def count_call(ledger: str, x: int) -> int:
    with open(ledger, "a") as f:
        f.write("called\n")
    return x + 1


@dsl.pipeline(name="counting")
def counting(ledger: str, x: int = 1) -> int:
    return count_call(ledger=ledger, x=x).output
