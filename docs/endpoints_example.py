"""Worked example of issue 3: a PEMBRO-RT-like population scored like the trial.

Virtual patients from the ``pembro_rt`` mix (pretreated, PD-L1 unselected, 2-3 lesions), SBRT
3 x 8 Gy to the largest lesion one week before pembrolizumab 200 mg q3w vs pembrolizumab alone;
RECIST 1.1 on non-irradiated lesions at 6-weekly scans, ORR at week 12; PFS/OS to 2 years.
Run: ``python docs/endpoints_example.py OUTDIR`` (prints the table, writes figures).
It uses the model defaults, not the shipped calibration (fits/default.json): the numbers illustrate the pipeline.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import abscopal as ab
from abscopal.endpoints.table import format_table
from abscopal.patients import MIXES, draw_patients
from abscopal.plot import plot_km, plot_lesion_trajectories, plot_spider, plot_swimmer, plot_waterfall
from abscopal.targeting import place_rt_targets


def main(outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    patients = draw_patients(MIXES["pembro_rt"].capped(3), 400, n_lesions=3, seed=2019)
    patients, targets = place_rt_targets(patients, "largest")
    pembro = ab.drug_regimen("pembrolizumab_200mg_q3w")
    sbrt = ab.radiation_regimen("sbrt_24gy_3fx", start_day=-7, target_lesions=targets, mean_lung_dose_gy=4.0)
    arms = {
        "pembrolizumab": ab.TreatmentPlan(drug=pembro),
        "sbrt+pembrolizumab": ab.TreatmentPlan(drug=pembro, radiation=(sbrt,)),
    }
    ds = ab.simulate(
        ab.nsclc_model(3), arms, population=patients.population(), t_end_day=730.0, output_interval_day=7.0
    )
    ep = ab.score(ds, ab.TrialAssessment(orr_visit_day=84.0), patients=patients)
    print(f"{patients.n_patients} virtual patients per arm ({patients.rejected_draws} implausible draws rejected)")
    print(format_table(ep))
    fig, axes = plt.subplots(2, 3, figsize=(19, 10), layout="constrained")
    plot_km(ep, "pfs", ax=axes[0, 0])
    plot_km(ep, "os", ax=axes[0, 1])
    plot_lesion_trajectories(ds, arm="sbrt+pembrolizumab", patient=0, ax=axes[0, 2])
    plot_waterfall(ep, arm="sbrt+pembrolizumab", ax=axes[1, 0])
    plot_spider(ep, arm="sbrt+pembrolizumab", ax=axes[1, 1])
    plot_swimmer(ep, arm="sbrt+pembrolizumab", ax=axes[1, 2], max_patients=25)
    fig.savefig(out / "endpoints_example.png", dpi=100)
    print(f"figure -> {out / 'endpoints_example.png'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
