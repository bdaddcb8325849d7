"""One module per pipeline step: data, train, evaluate, register, promote, deploy, smoke_test."""
