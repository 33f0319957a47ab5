"""Router evaluation: metrics (APGR, CPT, cost-quality curves), reports and plots, cross-validation,
what-if replay of logged traffic."""
