import { Empty } from "../components/feedback";
import { Header } from "../components/layout";
import { linkTo } from "../router";

export function NotFound() {
  return (
    <>
      <Header title="Not found" />
      <Empty title="There is no such page in the console.">
        <a {...linkTo("/")}>Go to the overview</a>
      </Empty>
    </>
  );
}
