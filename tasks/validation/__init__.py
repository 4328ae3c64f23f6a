"""Great Expectations suites at each stage boundary.

The four suite functions (:func:`validate_pool`, :func:`validate_batch`, :func:`validate_answers`,
:func:`validate_labels`) are pure: they need no Prefect run and return a :class:`ValidationReport`.
:func:`run_suite` runs one of them by name; the Prefect step ``labelflow.flows.steps.validation.validate_frame``
publishes its outcomes as a table artifact and raises :class:`DataValidationError` on failure.

One module per idea: ``report`` (the plain result types and :class:`DataValidationError`), ``runtime`` (the one GX
context per process and the custom finite expectation), ``suites`` (the cached suites and the four suite functions)
and ``outcomes`` (GX results turned into plain :class:`ExpectationOutcome` rows).

How GX is used (see ``/work/shared/NOTES-prefect-gx.md``):

* GX is imported lazily (its import takes ~2-3 s) and **one** ephemeral context is built per process, with one
  pandas datasource, one dataframe asset and one whole-dataframe batch definition, reused by every call.
  Progress bars are switched off and GX's loggers are quietened to ``ERROR``.
* Suites are plain :class:`ExpectationSuite` objects kept in a small LRU cache keyed by their structure
  (columns, label names, ...); they are **not** registered in the context, and no ``ValidationDefinition``
  is created.
  We validate with ``batch_definition.get_batch(batch_parameters={"dataframe": df}).validate(suite, ...)``.
  Reason: ``ValidationDefinition.run`` also stores every result in the context's in-memory
  validation-results store (one more entry per call, never evicted), whereas ``Batch.validate`` runs the
  same validator and stores nothing. So nothing grows across thousands of calls (checked: 1000 calls, flat
  memory, empty results store).
* Values that change every call (the batch's allowed ids, the batch size limit) are GX suite parameters
  (``{"$PARAMETER": ...}``) supplied at run time, so the cached suite is reused.
  (``ExpectationSuite`` names must be unique in a context -- adding an existing name raises
  ``DataContextError`` -- which is one more reason not to register per-call suites there.)
* Null or non-finite pool features are caught by one custom multicolumn expectation,
  ``expect_multicolumn_values_to_be_finite`` (vectorised ``numpy.isfinite`` over all feature columns, nulls
  counted as unexpected). Built-in per-column ``not_null`` + ``between`` expectations cost ~1 s for 64 feature
  columns on 100k rows, almost all of it GX's per-expectation overhead; the single expectation costs ~0.02 s.
  Each feature column still gets its own ``expect_column_to_exist``.
"""

from labelflow.tasks.validation.outcomes import MAX_SAMPLES
from labelflow.tasks.validation.report import DataValidationError, ExpectationOutcome, ValidationReport
from labelflow.tasks.validation.suites import (
    MAX_LABEL_SHARE,
    MIN_ROWS_FOR_DISTRIBUTION,
    SUITES,
    run_suite,
    validate_answers,
    validate_batch,
    validate_labels,
    validate_pool,
)

__all__ = [
    "MAX_LABEL_SHARE",
    "MAX_SAMPLES",
    "MIN_ROWS_FOR_DISTRIBUTION",
    "SUITES",
    "DataValidationError",
    "ExpectationOutcome",
    "ValidationReport",
    "run_suite",
    "validate_answers",
    "validate_batch",
    "validate_labels",
    "validate_pool",
]
