"""The file MLflow logs as the served model's code ("models from code"): loading a logged model
runs it, which needs this package and nothing pickled (see :mod:`recsys.serving`)."""

from mlflow.models import set_model

from recsys.serving import RecsysPyfunc

set_model(RecsysPyfunc())
