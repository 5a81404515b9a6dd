// The prompt registry: the list of prompts (`#/prompts`) and one prompt with its versions
// (`#/prompts/{name}`), in MLflow's URL shapes.

export function PromptsPage() {
  return (
    <div className="page">
      <h1>Prompts</h1>
    </div>
  );
}

export function PromptPage({ name }: { name: string }) {
  return (
    <div className="page">
      <h1>{name}</h1>
    </div>
  );
}
