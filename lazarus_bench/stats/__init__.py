"""Statistics that turn a claim's measurements into a verdict: effect sizes, confidence intervals, tests, power.

Pure numpy + scipy. Conventions used throughout:

- "significant" means ``p < alpha``;
- every reported confidence interval is two-sided at ``confidence``, whatever the test's alternative, so that it
  is finite and comparable across results (a one-sided test at ``alpha`` matches the matching bound of a two-sided
  interval at ``1 - 2 * alpha``, which is the default the claim helpers use);
- zero-variance data never raise: the result carries ``degenerate=True`` and a ``note`` saying what happened;
- every resampling method takes a ``seed`` and is deterministic.

Verdicts (see ``decide``): SUPPORTED when the criterion is met and significant, REFUTED when the data show the
opposite at ``alpha``, INCONCLUSIVE when there are too few observations, too little power, or neither.

Modules: ``results`` (typed results, Verdict), ``resampling`` (bootstrap), ``tests``, ``effects``, ``power``,
``verdicts``.
"""

from __future__ import annotations

from .effects import (  # noqa: F401
    cohens_d,
    cohens_h,
    hedges_correction,
    hedges_g,
    one_sample_d,
    paired_d,
)
from .power import (  # noqa: F401
    binomial_rejection_region,
    mde_from_ci,
    min_detectable_d_one_sample,
    min_detectable_d_sign,
    min_detectable_effect,
    min_detectable_rate,
    power_binomial,
    power_one_sample_t,
    power_two_sample_t,
)
from .resampling import bootstrap_ci, build_variance  # noqa: F401
from .results import (  # noqa: F401
    ALTERNATIVES,
    BOOTSTRAP_METHODS,
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_POWER,
    DEFAULT_N_PERMUTATIONS,
    DEFAULT_N_RESAMPLES,
    BinomialResult,
    BootstrapCI,
    ClaimStatistic,
    EffectSize,
    PermutationResult,
    StatTestResult,
    Verdict,
    VerdictResult,
)
from .tests import (  # noqa: F401
    PERMUTATION_STATISTICS,
    binomial_test,
    ecdf,
    holm,
    holm_reject,
    one_sample_t,
    paired_test,
    permutation_test,
    sign_test,
    two_sample_t,
    wilson_interval,
)
from .verdicts import (  # noqa: F401
    RULES,
    Decision,
    combine,
    decide,
    equivalence_claim,
    evidence,
    exact_claim,
    final_verdict,
    no_data,
    not_testable,
    pending,
    proportion_claim,
    replicated_proportion_claim,
    threshold_claim,
)
