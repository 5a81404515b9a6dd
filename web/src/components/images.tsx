// A run's images logged by key and step, one card per key with a step slider, as MLflow's run
// page shows them.
import { useState } from "react";
import { artifactUrl, listArtifacts } from "../api";
import { groupLoggedImages, type LoggedImage } from "../images";
import { ErrorBanner, Spinner, useAsync } from "./common";

function ImageCard({ runId, imageKey, images }: { runId: string; imageKey: string; images: LoggedImage[] }) {
  const [index, setIndex] = useState(images.length - 1);
  const shown = images[Math.min(index, images.length - 1)];
  return (
    <figure className="image-card" data-image-key={imageKey}>
      <figcaption>
        <strong>{imageKey}</strong> <span className="muted" data-testid="image-step">Step {shown.step}</span>
      </figcaption>
      <a href={artifactUrl(runId, shown.path)} target="_blank" rel="noopener noreferrer">
        <img src={artifactUrl(runId, shown.thumbnail ?? shown.path)} alt={`${imageKey} at step ${shown.step}`} loading="lazy" />
      </a>
      {images.length > 1 && (
        <label className="image-slider">
          <span className="muted small">
            {images[0].step}–{images[images.length - 1].step}
          </span>
          <input
            type="range"
            aria-label={`Step of ${imageKey}`}
            min={0}
            max={images.length - 1}
            value={Math.min(index, images.length - 1)}
            onChange={(e) => setIndex(Number(e.target.value))}
          />
        </label>
      )}
    </figure>
  );
}

export function ImageGrid({ runId }: { runId: string }) {
  const { data, error, loading } = useAsync(async () => {
    const files = await listArtifacts({ kind: "run", id: runId }, "images");
    return groupLoggedImages(files.filter((f) => !f.is_dir).map((f) => f.path));
  }, [runId]);
  if (loading && !data) return <Spinner />;
  return (
    <>
      <ErrorBanner error={error} />
      {data && data.size === 0 && <p className="muted">No images were logged with a key (mlflow.log_image(image, key=…, step=…)).</p>}
      <div className="image-grid">
        {[...(data ?? new Map<string, LoggedImage[]>()).entries()].map(([key, images]) => (
          <ImageCard key={key} runId={runId} imageKey={key} images={images} />
        ))}
      </div>
    </>
  );
}
