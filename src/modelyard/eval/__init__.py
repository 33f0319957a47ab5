"""Router evaluation: metrics (APGR, CPT, cost-quality curves), reports and plots, cross-validation,
transfer to other task kinds (with generated, synthetically labelled sets), what-if replay of logged
traffic."""
