"""What an MLflow tracking server holds, read with MLflow's own Python client.

Usage: read_back.py TRACKING_URI EXPERIMENT OUT_DIR

Prints one JSON object: every run of EXPERIMENT (params, tags, status, the history of each
metric, every artifact file downloaded into OUT_DIR/<mlflow run id>/) and every version of
every registered model (run, tags, source, aliases). tests/e2e/mlflow.rs compares it with
pismo's own records.
"""

import json
import os
import sys

import mlflow
from mlflow.tracking import MlflowClient


def main():
    uri, experiment_name, out_dir = sys.argv[1:4]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    result = {"runs": [], "models": {}}
    if experiment is None:
        print(json.dumps(result))
        return
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        run_id = run.info.run_id
        metrics = {}
        for key in run.data.metrics:
            history = client.get_metric_history(run_id, key)
            metrics[key] = sorted(
                [m.step, m.value, m.timestamp] for m in history
            )
        dst = os.path.join(out_dir, run_id)
        os.makedirs(dst, exist_ok=True)
        artifacts = []
        folders = [None]
        while folders:
            for entry in client.list_artifacts(run_id, folders.pop()):
                if entry.is_dir:
                    folders.append(entry.path)
                    continue
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=entry.path, dst_path=dst
                )
                artifacts.append({"path": entry.path, "file": local})
        result["runs"].append(
            {
                "run_id": run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                "start_time": run.info.start_time,
                "end_time": run.info.end_time,
                "params": run.data.params,
                "tags": {k: v for k, v in run.data.tags.items()},
                "metrics": metrics,
                "artifacts": artifacts,
            }
        )
    for name in sorted(m.name for m in client.search_registered_models()):
        model = client.get_registered_model(name)
        versions = client.search_model_versions(f"name='{name}'")
        result["models"][name] = {
            "aliases": dict(model.aliases),
            "versions": sorted(
                (
                    {
                        "version": int(v.version),
                        "run_id": v.run_id,
                        "tags": dict(v.tags),
                        "source": v.source,
                    }
                    for v in versions
                ),
                key=lambda v: v["version"],
            ),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
