"""Turnout and vote-share tests; this package only gathers them (each lives in the module named for what it tests).

- ``fingerprint``: Klimek's election fingerprint (turnout against the winner's share, 2-D histogram)
- ``extreme``: the extreme cluster test (Klimek et al. 2012, extreme fraud)
- ``association``: the within-group turnout-share association (Klimek et al. 2012, incremental fraud)
- ``integer``: integer percentages (Kobak, Shpilkin & Pshenichnikov 2016), with ``poisson_binomial_sf``
- ``tables``: the three tests above per region with Benjamini-Hochberg q-values (``turnout_tests``)
- ``klimek``: Klimek's fraud model, its fit and bootstrap test
- ``models``: Klimek's model and Kobak's integer test per region, each against its own winner
- ``spikes``: Rozenas' resampled kernel density (spikes) test; ``spikes_r`` runs the R reference
- ``mebane``: Mebane's finite-mixture (eforensics-style) fraud model
- ``outliers``: local outliers of turnout and share among a station's neighbours

References: Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469; Kobak, Shpilkin &
Pshenichnikov (2016), Ann. Appl. Stat. 10:54; Rozenas (2017), Political Analysis 25:41; Ferrari,
McAlister & Mebane (2018); Benjamini & Hochberg (1995), JRSS B 57:289.

A flag from any of these is a statistical irregularity, not evidence of fraud: real local
homogeneity (a village voting as a bloc), re-votes, OCR misreadings and data entry also move a
polling station into the corners these tests look at.

Kernels take array-likes (int or float, NaN or pandas <NA> for missing). Units with a missing count,
a negative or fractional count, zero (or too few) registered voters, zero valid votes, or more
winner votes than valid votes are excluded from every kernel and counted, per reason, in the
result's ``excluded`` mapping; nothing is dropped silently. Turnout above 100 % (Indonesian TPS
admit DPK voters who are not on the roll) is kept and counted in ``turnout_above_1``.
"""

from .association import AssociationTest, turnout_share_association
from .extreme import ExtremeClusterTest, extreme_cluster_test
from .fingerprint import Fingerprint, fingerprint
from .integer import IntegerPercentTest, KobakIntegerTest, integer_percent_test, kobak_integer_test, poisson_binomial_sf
from .klimek import KlimekFit, KlimekTest, klimek_fit, klimek_test
from .mebane import MebaneFit, mebane_fraud, mebane_pvalues, mebane_table
from .models import TURNOUT_DEFINITIONS, TurnoutModels, administration_missing, region_winners, turnout_models
from .outliers import LocalOutliers, local_outliers, outlier_pvalues, sirekap_url
from .spikes import SpikesResult, SpikesTable, rozenas_spikes, spikes_pvalues, spikes_table
from .tables import TESTS, TurnoutTable, turnout_tests

__all__ = [
    "Fingerprint", "ExtremeClusterTest", "AssociationTest", "IntegerPercentTest", "KobakIntegerTest", "TurnoutTable",
    "fingerprint", "extreme_cluster_test", "turnout_share_association", "integer_percent_test", "kobak_integer_test",
    "poisson_binomial_sf", "turnout_tests", "TESTS",
    "TurnoutModels", "TURNOUT_DEFINITIONS", "administration_missing", "region_winners", "turnout_models",
    "KlimekFit", "KlimekTest", "klimek_fit", "klimek_test",
    "MebaneFit", "mebane_fraud", "mebane_pvalues", "mebane_table",
    "LocalOutliers", "local_outliers", "outlier_pvalues", "sirekap_url",
    "SpikesResult", "SpikesTable", "rozenas_spikes", "spikes_pvalues", "spikes_table",
]
