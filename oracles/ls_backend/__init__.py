"""al-loop as a Label Studio ML backend (``al-loop serve``): the protocol, its shapes, the webhook.

Label Studio calls a registered ML backend by URL: ``GET /health``,
``POST /setup`` (on connect, and before each prediction run, for the model
version), ``POST /predict`` (a batch of tasks, one prediction each, in order)
and ``POST /webhook`` (events such as annotations created or updated). This
package answers them for one campaign run of a store:

- :mod:`oracles.ls_backend.app` — :func:`~oracles.ls_backend.app.create_app`,
  the FastAPI app (routes, optional HTTP basic auth, one-line JSON errors);
- :mod:`oracles.ls_backend.model` — the model view: the round's learner fitted
  on the run's labels, rebuilt from the store, and the predictions and scores
  it gives tasks;
- :mod:`oracles.ls_backend.webhook` — the events, applied to the store.

Importing this package imports neither FastAPI nor the store: the CLI reaches
the app through ``ORACLES.get("label_studio").backend_app(...)``, which imports
:mod:`oracles.ls_backend.app` on first use.
"""
